"""Sendy adapter: hand-written rows, the real file's first rows, and reason counts against a pandas oracle."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from data_contracts.limits import ContractLimits
from data_contracts.sources.base import ingest
from data_contracts.sources.sendy import DEFAULT_REFERENCE_MONTHS, SendyAdapter
from data_contracts.validate import REASON_CODES, validate_trips

FIXTURES = Path(__file__).parent / "fixtures"
NAIROBI = dt.timezone(dt.timedelta(hours=3))  # UTC+3 all year, no DST


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def contract_row(staged: pl.DataFrame, row_number: int) -> dict:
    return staged.filter(pl.col("row_number") == row_number).drop("raw").to_dicts()[0]


@pytest.fixture(scope="module")
def sendy_csv(shared_data: Path) -> Path:
    path = shared_data / "sendy_nairobi" / "deliveries.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def test_hand_written_rows_give_exact_contract_values() -> None:
    staged = SendyAdapter().stage(FIXTURES / "sendy_deliveries.csv")
    assert contract_row(staged, 1) == {
        "trip_id": "Order_No_T1",
        "source": "sendy",
        "origin_lat": -1.28,
        "origin_lng": 36.81,
        "dest_lat": -1.30,
        "dest_lng": 36.78,
        "duration_s": 1230.0,
        "road_distance_km": 6.0,
        "temperature_c": 24.5,
        # day 3, Wednesday -> first 2019 month where the 3rd is a Wednesday: April; 1:05 PM EAT = 10:05 UTC
        "start_ts": utc(2019, 4, 3, 10, 5, 0),
        "tz": "Africa/Nairobi",
        "courier_id": "Rider_Id_T7",
        "vehicle_type": "motorbike",
        "precipitation_mm": 0.0,  # blank: no rain
        "source_file": "sendy_deliveries.csv",
        "row_number": 1,
    }
    second = contract_row(staged, 2)
    # 12:00:10 AM on Saturday the 20th in Nairobi is still Friday evening in UTC
    assert second["start_ts"] == utc(2019, 4, 19, 21, 0, 10)
    assert second["temperature_c"] is None
    assert second["precipitation_mm"] == 2.5


def test_bad_rows_are_quarantined_with_their_reason() -> None:
    result = validate_trips(SendyAdapter().stage(FIXTURES / "sendy_deliveries.csv"))
    reasons = dict(zip(result.quarantine["trip_id"], result.quarantine["reason"], strict=True))
    assert reasons == {
        "Order_No_T3": "unparseable_timestamp",  # weekday 8
        "Order_No_T4": "duration_under_limit",  # 45 s
        "Order_No_T5": "unparseable_timestamp",  # clock "13:75:00 PM"
    }
    assert result.valid["trip_id"].to_list() == ["Order_No_T1", "Order_No_T2"]
    assert result.rows_in == result.rows_valid + result.rows_quarantined == 5


def test_single_reference_month_quarantines_rows_whose_weekday_disagrees() -> None:
    staged = SendyAdapter(reference_months="2019-02").stage(FIXTURES / "sendy_deliveries.csv")
    # 3 Feb 2019 was a Sunday, not the Wednesday the row says; 5 Feb a Tuesday, not a Friday
    assert staged["start_ts"].to_list() == [None] * 5
    april = SendyAdapter(reference_months="2019-04").stage(FIXTURES / "sendy_deliveries.csv")
    assert april["start_ts"].to_list()[:2] == [utc(2019, 4, 3, 10, 5, 0), utc(2019, 4, 19, 21, 0, 10)]


def test_malformed_reference_month_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="reference month must look like '2019-08'"):
        SendyAdapter(reference_months="Aug 2019")


def test_a_file_of_another_format_names_the_missing_columns() -> None:
    with pytest.raises(ValueError, match=r"not a sendy file: missing columns \['Order No'"):
        SendyAdapter().stage(FIXTURES / "generic_deliveries.csv")


@pytest.mark.realdata
def test_first_two_real_rows_give_exact_contract_values(sendy_csv: Path) -> None:
    staged = SendyAdapter().stage(sendy_csv)
    assert contract_row(staged, 1) == {
        "trip_id": "Order_No_4211",
        "source": "sendy",
        "origin_lat": -1.3177547,
        "origin_lng": 36.8303703,
        "dest_lat": -1.3004062,
        "dest_lng": 36.829741,
        "duration_s": 745.0,
        "road_distance_km": 4.0,
        "temperature_c": 20.4,
        # day 9, Friday (5): first 2019 month where the 9th is a Friday is August; 10:27:30 AM EAT
        "start_ts": utc(2019, 8, 9, 7, 27, 30),
        "tz": "Africa/Nairobi",
        "courier_id": "Rider_Id_432",
        "vehicle_type": "motorbike",
        "precipitation_mm": 0.0,
        "source_file": "deliveries.csv",
        "row_number": 1,
    }
    second = contract_row(staged, 2)
    assert (second["trip_id"], second["courier_id"], second["duration_s"]) == (
        "Order_No_25375",
        "Rider_Id_856",
        1993.0,
    )
    assert (second["road_distance_km"], second["temperature_c"]) == (16.0, 26.4)
    assert second["start_ts"] == utc(2019, 4, 12, 8, 44, 9)  # Friday 12 April 2019, 11:44:09 AM EAT


def _oracle_start_ts(day: int, weekday: int, clock: str) -> dt.datetime | None:
    """First reference month where `day` falls on `weekday`, plain datetime arithmetic."""
    for month in DEFAULT_REFERENCE_MONTHS:
        year, mon = (int(part) for part in month.split("-"))
        try:
            date = dt.date(year, mon, day)
        except ValueError:
            continue
        if date.isoweekday() == weekday:
            local = dt.datetime.strptime(f"{date} {clock}", "%Y-%m-%d %I:%M:%S %p").replace(tzinfo=NAIROBI)
            return local.astimezone(dt.UTC)
    return None


def _haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def _oracle_reasons(raw: pd.DataFrame, limits: ContractLimits) -> dict[int, list[str]]:
    """Row number -> every failed rule, computed row by row from the raw CSV."""
    failed: dict[int, list[str]] = {}
    seen: set[str] = set()
    for number, r in enumerate(raw.to_dict("records"), start=1):
        coords = (r["Pickup Lat"], r["Pickup Long"], r["Destination Lat"], r["Destination Long"])
        duration = r["Time from Pickup to Arrival"]
        reasons = []
        if any(pd.isna(v) for v in (*coords, duration, r["Order No"], r["Rider Id"])):
            reasons.append("missing_value")
        if (
            _oracle_start_ts(r["Pickup - Day of Month"], r["Pickup - Weekday (Mo = 1)"], r["Pickup - Time"])
            is None
        ):
            reasons.append("unparseable_timestamp")
        if abs(coords[0]) > 90 or abs(coords[2]) > 90 or abs(coords[1]) > 180 or abs(coords[3]) > 180:
            reasons.append("out_of_range_coord")
        tol = limits.null_island_tolerance_deg
        if max(abs(coords[0]), abs(coords[1])) < tol or max(abs(coords[2]), abs(coords[3])) < tol:
            reasons.append("null_island")
        if duration <= 0:
            reasons.append("non_positive_duration")
        elif duration < limits.min_duration_s:
            reasons.append("duration_under_limit")
        if duration > limits.max_duration_s:
            reasons.append("duration_over_limit")
        if duration > 0 and _haversine_km(*coords) / (duration / 3600) > limits.speed_limit("motorbike"):
            reasons.append("implausible_speed")
        temperature, rain = r["Temperature"], r["Precipitation in millimeters"]
        if r["Distance (KM)"] < 0 or abs(temperature) > 60 or rain < 0:  # NaN compares False: nullable
            reasons.append("invalid_value")
        if r["Order No"] in seen:
            reasons.append("duplicate_trip")
        seen.add(r["Order No"])
        if reasons:
            failed[number] = reasons
    return failed


@pytest.mark.realdata
def test_reason_counts_match_an_independent_oracle(sendy_csv: Path) -> None:
    limits = ContractLimits()
    result = ingest(SendyAdapter(), sendy_csv, limits)
    raw = pd.read_csv(sendy_csv)
    oracle = _oracle_reasons(raw, limits)
    # the oracle's rules are the contract's, in REASON_CODES precedence
    expected = Counter(sorted(reasons, key=REASON_CODES.index)[0] for reasons in oracle.values())
    print("sendy:", result.summary())
    assert result.reasons == dict(expected)
    assert result.reasons == {"duration_under_limit": 570, "implausible_speed": 108}
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (16_565, 15_887, 678)
    assert result.rows_in == result.rows_valid + result.rows_quarantined == len(raw)
    assert set(result.quarantine["row_number"]) == set(oracle)

    # every one of the 570 rows under 60 s is in the quarantine with that reason among its reasons
    under_60 = set((raw.index[raw["Time from Pickup to Arrival"] < 60] + 1).tolist())
    assert len(under_60) == 570
    flagged = result.quarantine.filter(pl.col("reasons").list.contains("duration_under_limit"))
    assert set(flagged["row_number"]) == under_60
    # and the README's 674 rows over 80 km/h straight-line are all flagged as implausible speed too
    speeding = result.quarantine.filter(pl.col("reasons").list.contains("implausible_speed"))
    assert speeding.height == sum("implausible_speed" in r for r in oracle.values()) == 674


@pytest.mark.realdata
def test_every_start_time_matches_plain_datetime_arithmetic(sendy_csv: Path) -> None:
    staged = SendyAdapter().stage(sendy_csv)
    raw = pd.read_csv(sendy_csv)
    expected = [
        _oracle_start_ts(day, weekday, clock)
        for day, weekday, clock in zip(
            raw["Pickup - Day of Month"], raw["Pickup - Weekday (Mo = 1)"], raw["Pickup - Time"], strict=True
        )
    ]
    assert staged["start_ts"].to_list() == expected
    assert staged["start_ts"].null_count() == 0


@pytest.mark.parametrize("day", range(1, 32))
def test_every_day_of_month_on_every_weekday_has_a_place(day: int, tmp_path: Path) -> None:
    """Any day 1-31 on any weekday is a valid Sendy row (the month is anonymised): the hand-written first
    row, moved to each (day, weekday), is placed on a date with exactly that day and weekday."""
    raw = pl.read_csv(FIXTURES / "sendy_deliveries.csv", infer_schema=False).head(1)
    rows = pl.concat(
        raw.with_columns(
            pl.lit(f"Order_No_{day}_{weekday}").alias("Order No"),
            *(pl.lit(str(day)).alias(f"{event} - Day of Month") for event in SENDY_EVENTS),
            *(pl.lit(str(weekday)).alias(f"{event} - Weekday (Mo = 1)") for event in SENDY_EVENTS),
        )
        for weekday in range(1, 8)
    )
    rows.write_csv(tmp_path / "deliveries.csv")
    result = ingest(SendyAdapter(), tmp_path / "deliveries.csv")
    assert result.rows_quarantined == 0, result.quarantine.select("trip_id", "reason").rows()
    local = result.valid["start_ts"].dt.convert_time_zone("Africa/Nairobi")
    assert local.dt.day().to_list() == [day] * 7
    assert local.dt.weekday().to_list() == list(range(1, 8))
    assert local.dt.strftime("%H:%M:%S").to_list() == ["13:05:00"] * 7
    assert result.calendar == "day_of_month"


SENDY_EVENTS = ("Placement", "Confirmation", "Arrival at Pickup", "Pickup", "Arrival at Destination")
