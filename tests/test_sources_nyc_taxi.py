"""NYC taxi adapters: the labelled teaching sample and the TLC yellow files (three header generations, CSV and Parquet)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from data_contracts.sources.base import ingest
from data_contracts.sources.nyc_taxi import KM_PER_MILE, NycTaxiSampleAdapter, TlcYellowAdapter
from data_contracts.validate import validate_trips

FIXTURES = Path(__file__).parent / "fixtures"
TLC = FIXTURES / "tlc_yellow"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def contract_row(staged: pl.DataFrame, row_number: int) -> dict:
    return staged.filter(pl.col("row_number") == row_number).drop("raw").to_dicts()[0]


def test_sample_rows_give_exact_contract_values() -> None:
    staged = NycTaxiSampleAdapter().stage(FIXTURES / "nyc_taxi_sample.csv")
    assert contract_row(staged, 1) == {
        "trip_id": "t_0001",
        "source": "nyc_taxi",
        "origin_lat": 40.758,
        "origin_lng": -73.985,
        "dest_lat": 40.785,
        "dest_lng": -73.97,
        "duration_s": 900.0,
        "start_ts": utc(2016, 5, 1, 4, 5),  # Sunday 1 May 2016 00:05 EDT
        "tz": "America/New_York",
        "vehicle_type": "car",
        "road_distance_km": 2.5 * KM_PER_MILE,
        "source_file": "nyc_taxi_sample.csv",
        "row_number": 1,
    }
    # Tuesday 31 May 23:59 EDT is already 1 June in UTC
    assert staged["start_ts"].to_list() == [
        utc(2016, 5, 1, 4, 5),
        utc(2016, 6, 1, 3, 59),
        utc(2016, 5, 10, 13, 30),
        None,
    ]


def test_sample_test_rows_and_wrong_weekdays_are_quarantined() -> None:
    result = validate_trips(NycTaxiSampleAdapter().stage(FIXTURES / "nyc_taxi_sample.csv"))
    reasons = dict(zip(result.quarantine["trip_id"], result.quarantine["reason"], strict=True))
    assert reasons == {
        "t_0003": "missing_value",  # a 'test' row: duration NA by design
        "t_0004": "unparseable_timestamp",  # weekday 2 (Monday) but 10 May 2016 was a Tuesday
    }
    assert result.valid["trip_id"].to_list() == ["t_0001", "t_0002"]


def test_sample_a_file_of_another_format_names_the_missing_columns() -> None:
    with pytest.raises(ValueError, match=r"not a nyc_taxi file: missing columns \['obs_id'"):
        NycTaxiSampleAdapter().stage(FIXTURES / "sendy_deliveries.csv")


@pytest.fixture(scope="module")
def sample_csv(shared_data: Path) -> Path:
    path = shared_data / "nyc_taxi_sample" / "nyc_taxi.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


@pytest.mark.realdata
def test_real_sample_first_rows(sample_csv: Path) -> None:
    staged = NycTaxiSampleAdapter().stage(sample_csv)
    assert contract_row(staged, 1) == {
        "trip_id": "id_000001",
        "source": "nyc_taxi",
        "origin_lat": 40.75883102416992,
        "origin_lng": -73.96575927734375,
        "dest_lat": 40.78119659423828,
        "dest_lng": -73.94647216796875,
        "duration_s": 1183.0,
        "start_ts": utc(2016, 5, 5, 14, 48),  # day 5, weekday 5 = Thursday, 10:48 EDT
        "tz": "America/New_York",
        "vehicle_type": "car",
        "road_distance_km": 2.1 * KM_PER_MILE,
        "source_file": "nyc_taxi.csv",
        "row_number": 1,
    }
    assert contract_row(staged, 2)["start_ts"] == utc(2016, 5, 12, 18, 22)  # Thursday 12 May, 14:22 EDT
    assert staged["start_ts"].null_count() == 0  # every row's weekday agrees with May 2016


@pytest.mark.realdata
def test_real_sample_quarantines_exactly_the_unlabelled_test_rows(sample_csv: Path) -> None:
    result = ingest(NycTaxiSampleAdapter(), sample_csv)
    raw = pd.read_csv(sample_csv)
    test_rows = set((raw.index[raw["train_id"] == "test"] + 1).tolist())
    print("nyc_taxi:", result.summary())
    assert result.rows_in == result.rows_valid + result.rows_quarantined == len(raw) == 10_000
    assert result.reasons == {"missing_value": len(test_rows)} == {"missing_value": 2_000}
    assert set(result.quarantine["row_number"]) == test_rows


def test_tlc_2015_rows_give_exact_values_and_reasons() -> None:
    staged = TlcYellowAdapter().stage(TLC / "yellow_tripdata_2015-01-sample.csv")
    row = contract_row(staged, 1)
    assert row == {
        "trip_id": "2015-01-15 19:05:39|2015-01-15 19:23:42|-73.993896484375|40.750110626220703"
        "|-73.974784851074219|40.750617980957031|1.59",
        "source": "tlc_yellow",
        "origin_lat": 40.750110626220703,
        "origin_lng": -73.993896484375,
        "dest_lat": 40.750617980957031,
        "dest_lng": -73.974784851074219,
        "start_ts": utc(2015, 1, 16, 0, 5, 39),  # 19:05:39 EST
        "tz": "America/New_York",
        "duration_s": 1083.0,  # 19:23:42 - 19:05:39
        "vehicle_type": "car",
        "road_distance_km": 1.59 * KM_PER_MILE,
        "source_file": "yellow_tripdata_2015-01-sample.csv",
        "row_number": 1,
    }
    result = validate_trips(staged)
    assert dict(zip(result.quarantine["row_number"], result.quarantine["reason"], strict=True)) == {
        3: "duplicate_trip",  # row 2 repeated verbatim
        4: "null_island",  # 0/0 coordinates, common in TLC data
        5: "non_positive_duration",  # drop-off before pickup
    }


@pytest.mark.parametrize(
    ("name", "start", "duration"),
    [
        (
            "yellow_tripdata_2009-01-sample.csv",
            utc(2009, 1, 4, 7, 52),
            600.0,
        ),  # Trip_Pickup_DateTime, Start_Lon
        (
            "yellow_tripdata_2014-06-sample.csv",
            utc(2014, 6, 1, 18, 10),
            1110.0,
        ),  # ' pickup_datetime' (padded), EDT
    ],
)
def test_tlc_older_header_generations(name: str, start: dt.datetime, duration: float) -> None:
    row = contract_row(TlcYellowAdapter().stage(TLC / name), 1)
    assert (row["start_ts"], row["duration_s"]) == (start, duration)
    assert (row["source"], row["vehicle_type"]) == ("tlc_yellow", "car")


def test_tlc_parquet_stages_like_the_csv(tmp_path: Path) -> None:
    csv = TLC / "yellow_tripdata_2015-01-sample.csv"
    parquet = tmp_path / "yellow_tripdata_2015-01-sample.parquet"
    # typed columns as TLC's own Parquet files have them: timestamps, floats, ints
    pl.read_csv(csv, try_parse_dates=True).write_parquet(parquet)
    assert pl.read_parquet(parquet).schema["tpep_pickup_datetime"] == pl.Datetime("us")
    from_csv = TlcYellowAdapter().stage(csv).drop("trip_id", "raw", "source_file")
    from_parquet = TlcYellowAdapter().stage(parquet).drop("trip_id", "raw", "source_file")
    assert from_parquet.equals(from_csv)


def test_tlc_a_file_of_another_format_names_the_missing_columns() -> None:
    with pytest.raises(
        ValueError,
        match=r"not a tlc_yellow file: missing columns pickup_ts \(one of tpep_pickup_datetime, pickup_datetime",
    ):
        TlcYellowAdapter().stage(FIXTURES / "nyc_taxi_sample.csv")
