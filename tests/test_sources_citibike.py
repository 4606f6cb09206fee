"""Citi Bike adapter: every header spelling and timestamp format, cross-file duplicates, and the real months."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from data_contracts.sources.base import files_for, ingest
from data_contracts.sources.citibike import CitiBikeAdapter, normalize_header
from data_contracts.validate import ValidationResult

FIXTURES = Path(__file__).parent / "fixtures" / "citibike"
REAL_MONTHS = (
    "201702",
    "201703",
    "201704",
    "201711",
    "201712",
    "201801",
    "201901",
    "201902",
    "201903",
    "201912",
)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def contract_row(staged: pl.DataFrame, row_number: int) -> dict:
    return staged.filter(pl.col("row_number") == row_number).drop("raw").to_dicts()[0]


@pytest.mark.parametrize(
    ("header", "normalized"),
    [("Trip Duration", "tripduration"), ("start station id", "startstationid"), (" Bike ID ", "bikeid")],
)
def test_header_spellings_normalize_to_one_name(header: str, normalized: str) -> None:
    assert normalize_header(header) == normalized


def test_each_timestamp_format_gives_the_right_utc_instant() -> None:
    adapter = CitiBikeAdapter()
    first = adapter.stage(FIXTURES / "JC-TEST01-citibike-tripdata.csv")
    second = adapter.stage(FIXTURES / "JC-TEST02-citibike-tripdata.csv")
    third = adapter.stage(FIXTURES / "JC-TEST03-citibike-tripdata.csv")
    assert contract_row(first, 1) == {
        "trip_id": "11111@3001@2018-03-11T06:58Z",
        "source": "citibike",
        "origin_lat": 40.72,
        "origin_lng": -74.04,
        "dest_lat": 40.73,
        "dest_lng": -74.045,
        "duration_s": 600.0,
        # fractional seconds; 01:58 EST, two minutes before the spring-forward gap
        "start_ts": dt.datetime(2018, 3, 11, 6, 58, 20, 123000, tzinfo=dt.UTC),
        "tz": "America/New_York",
        "courier_id": "11111",
        "vehicle_type": "bicycle",
        "source_file": "JC-TEST01-citibike-tripdata.csv",
        "row_number": 1,
    }
    assert first["start_ts"][1] is None  # 02:30 on 11 March 2018 never happened in New York
    assert second["start_ts"][1] == utc(2018, 11, 4, 5, 30)  # 1:30 happened twice; the earlier (EDT) reading
    assert third["start_ts"].to_list()[:2] == [utc(2019, 1, 1, 8, 9), utc(2020, 1, 1, 4, 59)]
    assert second["courier_id"][2] is None  # 'NULL' bike id


def test_fixture_rows_are_quarantined_with_their_reasons_and_duplicates_span_files() -> None:
    result = ingest(CitiBikeAdapter(), FIXTURES)
    quarantined = {
        (row["source_file"][3:9], row["row_number"]): row["reason"]
        for row in result.quarantine.iter_rows(named=True)
    }
    assert quarantined == {
        ("TEST01", 2): "unparseable_timestamp",  # DST gap
        ("TEST01", 3): "duration_over_limit",  # 100,000 s
        ("TEST01", 4): "null_island",  # end station at 0.0/0.0
        ("TEST02", 1): "duplicate_trip",  # TEST01 row 1 re-saved without seconds
        ("TEST02", 3): "missing_value",  # bike id 'NULL' -> no trip id
        ("TEST03", 3): "missing_value",  # tripduration 'abc'
    }
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (10, 4, 6)


def test_a_file_of_another_format_names_the_missing_columns() -> None:
    sendy = Path(__file__).parent / "fixtures" / "sendy_deliveries.csv"
    with pytest.raises(
        ValueError, match=r"not a citibike file: missing columns \['starttime', 'startstationid'"
    ):
        CitiBikeAdapter().stage(sendy)


@pytest.fixture(scope="module")
def citibike_dir(shared_data: Path) -> Path:
    path = shared_data / "citibike_jersey_city"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def all_months(citibike_dir: Path) -> ValidationResult:
    return ingest(CitiBikeAdapter(), citibike_dir)


def _raw_month(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw.columns = [re.sub(r"\s+", "", c.lower()) for c in raw.columns]
    raw["source_file"], raw["row_number"] = path.name, range(1, len(raw) + 1)
    return raw


@pytest.fixture(scope="module")
def raw_months(citibike_dir: Path) -> pd.DataFrame:
    return pd.concat([_raw_month(f) for f in files_for(CitiBikeAdapter(), citibike_dir)], ignore_index=True)


@pytest.mark.realdata
def test_all_ten_months_parse_and_every_month_contributes(
    all_months: ValidationResult, raw_months: pd.DataFrame
) -> None:
    print("citibike:", all_months.summary())
    assert (
        all_months.rows_in
        == all_months.rows_valid + all_months.rows_quarantined
        == len(raw_months)
        == 181_145
    )
    assert "unparseable_timestamp" not in all_months.reasons
    assert not all_months.quarantine["reasons"].list.contains("unparseable_timestamp").any()
    per_file = dict(all_months.valid.group_by("source_file").len().iter_rows())
    assert sorted(per_file) == [f"JC-{m}-citibike-tripdata.csv" for m in REAL_MONTHS]
    assert per_file["JC-201703-citibike-tripdata.csv"] == 12_179
    assert min(per_file.values()) == 12_179
    # valid start times fall in the month named by their file, read on the New York clock
    local_month = all_months.valid.select(
        pl.col("start_ts").dt.convert_time_zone("America/New_York").dt.strftime("%Y%m").alias("month"),
        pl.col("source_file").str.slice(3, 6).alias("file_month"),
    )
    assert (local_month["month"] == local_month["file_month"]).all()


@pytest.mark.realdata
def test_reasons_match_counts_from_the_raw_files(
    all_months: ValidationResult, raw_months: pd.DataFrame
) -> None:
    duration = raw_months["tripduration"].astype(float)
    over_4h = int((duration > 4 * 3600).sum())
    assert over_4h == 236
    # the null-island trip is also over 4 h and is filed under its first reason
    assert all_months.reasons == {"duration_over_limit": over_4h - 1, "null_island": 1}
    assert all_months.valid["trip_id"].is_unique().all()


@pytest.mark.realdata
def test_the_55_trips_over_24_hours_and_the_null_island_trip_are_quarantined(
    all_months: ValidationResult, raw_months: pd.DataFrame
) -> None:
    over_day = raw_months[raw_months["tripduration"].astype(float) > 24 * 3600]
    assert len(over_day) == 55
    keys = pl.DataFrame({"source_file": over_day["source_file"], "row_number": over_day["row_number"]})
    hits = all_months.quarantine.join(keys, on=["source_file", "row_number"], how="semi")
    assert hits.height == 55
    assert hits["reasons"].list.contains("duration_over_limit").all()
    assert hits["duration_s"].max() == 2_135_016.0  # 24.7 days

    indiana = all_months.quarantine.filter(pl.col("dest_lat") == 0.0)
    assert indiana.select("source_file", "row_number", "reason", "reasons").to_dicts() == [
        {
            "source_file": "JC-201703-citibike-tripdata.csv",
            "row_number": 9117,
            "reason": "null_island",
            # ~8,000 km from Jersey City to 0.0/0.0 in 4.5 days is also 74 km/h on a bicycle
            "reasons": ["null_island", "duration_over_limit", "implausible_speed"],
        }
    ]
    assert '"End Station Name":"Indiana"' in indiana["raw"][0]


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("month", "expected"),
    [
        # original export, title-case header: 2017-02-01 00:06:33 EST
        ("201702", ("24493@3214@2017-02-01T05:06Z", 40.7127742, -74.0364857, 40.7287448, -74.0321082, 435.0, utc(2017, 2, 1, 5, 6, 33), "24493")),
        # spreadsheet, no seconds: 11/1/2017 0:04 EDT
        ("201711", ("31817@3199@2017-11-01T04:04Z", 40.7287448, -74.0321082, 40.7192517, -74.034234, 370.0, utc(2017, 11, 1, 4, 4), "31817")),
        # spreadsheet, two-digit year and AM/PM: 1/1/19 3:09 AM EST
        ("201901", ("29612@3183@2019-01-01T08:09Z", 40.7162469, -74.0334588, 40.7127742, -74.0364857, 201.0, utc(2019, 1, 1, 8, 9), "29612")),
    ],
)  # fmt: skip
def test_first_real_row_of_each_format(citibike_dir: Path, month: str, expected: tuple) -> None:
    staged = CitiBikeAdapter().stage(citibike_dir / f"JC-{month}-citibike-tripdata.csv")
    row = contract_row(staged, 1)
    fields = (
        "trip_id",
        "origin_lat",
        "origin_lng",
        "dest_lat",
        "dest_lng",
        "duration_s",
        "start_ts",
        "courier_id",
    )
    assert tuple(row[f] for f in fields) == expected
    assert (row["source"], row["tz"], row["vehicle_type"]) == ("citibike", "America/New_York", "bicycle")
