"""The trip contract: one hand-built bad row per reason code, and the rows-in = valid + quarantined invariant."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_contracts.ingest import load_trips
from data_contracts.limits import ContractLimits
from data_contracts.schema import TripSchema, contract_columns, contract_markdown
from data_contracts.validate import REASON_CODES, reason_for_rule, validate_trips

T0 = dt.datetime(2026, 3, 2, 8, 30, tzinfo=dt.UTC)

GOOD = {
    "trip_id": "t-good",
    "source": "test",
    "origin_lat": -1.2921,
    "origin_lng": 36.8219,
    "dest_lat": -1.3000,
    "dest_lng": 36.8000,  # ~2.6 km away
    "start_ts": T0,
    "tz": "Africa/Nairobi",
    "duration_s": 900.0,
    "courier_id": "c1",
    "vehicle_type": "motorbike",
    "road_distance_km": 3.4,
    "temperature_c": 21.0,
    "precipitation_mm": 0.0,
}


def staged(*rows: dict) -> pl.DataFrame:
    frame = pl.DataFrame(list(rows), schema=TripSchema.create_empty().schema, strict=False)
    return frame.with_columns(
        pl.lit("hand.csv").alias("source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("row_number"),
        pl.struct(pl.all().cast(pl.String)).struct.json_encode().alias("raw"),
    )


def bad(trip_id: str, **changes: object) -> dict:
    return {**GOOD, "trip_id": trip_id, **changes}


CASES = [
    ("missing_value", bad("m", dest_lat=None)),
    ("unparseable_timestamp", bad("u", start_ts=None)),
    ("out_of_range_coord", bad("o", origin_lat=91.5)),
    ("null_island", bad("n", dest_lat=0.0, dest_lng=0.0)),
    ("non_positive_duration", bad("p", duration_s=-4.0)),
    ("duration_under_limit", bad("s", duration_s=12.0)),
    ("duration_over_limit", bad("l", duration_s=5 * 3600.0)),
    ("implausible_speed", bad("v", dest_lat=-1.40, duration_s=120.0)),  # 12 km in 2 min
    ("invalid_value", bad("i", temperature_c=85.0)),
    ("duplicate_trip", bad("t-good")),
]


def test_every_reason_code_has_a_case() -> None:
    assert sorted(code for code, _ in CASES) == sorted(REASON_CODES)


@pytest.mark.parametrize(("reason", "row"), CASES, ids=[c for c, _ in CASES])
def test_bad_row_is_quarantined_with_its_reason(reason: str, row: dict) -> None:
    result = validate_trips(staged(GOOD, row))
    assert result.valid["trip_id"].to_list() == ["t-good"]
    assert result.quarantine.height == 1
    quarantined = result.quarantine.row(0, named=True)
    assert quarantined["reason"] == reason
    assert quarantined["source_file"] == "hand.csv"
    assert quarantined["row_number"] == 2
    assert json.loads(quarantined["raw"])["trip_id"] == row["trip_id"]
    assert result.reasons == {reason: 1}


def test_good_row_passes_with_exact_values() -> None:
    result = validate_trips(staged(GOOD))
    assert result.quarantine.height == 0
    row = result.valid.row(0, named=True)
    assert row["start_ts"] == T0
    assert row["duration_s"] == 900.0
    assert row["row_number"] == 1


def test_reason_precedence_and_all_reasons_listed() -> None:
    row = bad("x", origin_lat=0.0, origin_lng=0.0, duration_s=30.0)
    result = validate_trips(staged(row))
    q = result.quarantine.row(0, named=True)
    assert q["reason"] == "null_island"
    assert "duration_under_limit" in q["reasons"]
    assert "implausible_speed" in q["reasons"]  # 4,000 km in 30 s


def test_speed_limits_are_configuration() -> None:
    # 2.6 km in 4 min = ~39 km/h: fine for a motorbike, implausible for someone on foot
    row = bad("f", duration_s=240.0, vehicle_type="foot")
    assert validate_trips(staged(row)).reasons == {"implausible_speed": 1}
    relaxed = ContractLimits(max_speed_kmh={"foot": 50.0, "default": 120.0})
    assert validate_trips(staged(row), relaxed).reasons == {}


def test_duration_limits_are_configuration() -> None:
    row = bad("d", duration_s=5 * 3600.0)
    assert validate_trips(staged(row), ContractLimits(max_duration_s=6 * 3600.0)).rows_valid == 1


def test_rule_names_map_to_reason_codes() -> None:
    assert reason_for_rule("origin_lat|max") == "out_of_range_coord"
    assert reason_for_rule("start_ts|nullability") == "unparseable_timestamp"
    assert reason_for_rule("duration_s|nan") == "missing_value"
    assert reason_for_rule("courier_id|nullability") == "missing_value"
    assert reason_for_rule("implausible_speed") == "implausible_speed"


def test_nan_measurement_means_not_recorded() -> None:
    result = validate_trips(staged(bad("w", temperature_c=float("nan"))))
    assert result.rows_valid == 1
    assert result.valid["temperature_c"].to_list() == [None]


def test_contract_is_documented_once() -> None:
    columns = contract_columns()
    assert columns["start_ts"]["dtype"] == "Datetime(time_unit='us', time_zone='UTC')"
    assert columns["courier_id"]["nullable"] is True
    assert "| `duration_s` | Float64 | no |" in contract_markdown()


coordinate = st.one_of(st.floats(-100, 100), st.just(0.0), st.none(), st.just(float("nan")))
duration = st.one_of(st.floats(-100, 30000), st.none(), st.just(float("inf")))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(coordinate, coordinate, duration, st.sampled_from(["a", "b", "c", "d"]), st.booleans()),
        min_size=1,
        max_size=25,
    )
)
def test_rows_in_equals_valid_plus_quarantined(rows: list[tuple]) -> None:
    staged_rows = [
        bad(tid, origin_lat=lat, dest_lng=lng, duration_s=dur, start_ts=T0 if has_ts else None)
        for lat, lng, dur, tid, has_ts in rows
    ]
    result = validate_trips(staged(*staged_rows))
    assert result.rows_in == len(rows)
    assert result.rows_valid + result.rows_quarantined == len(rows)
    assert sorted(result.valid["row_number"].to_list() + result.quarantine["row_number"].to_list()) == list(
        range(1, len(rows) + 1)
    )
    assert result.quarantine["reason"].null_count() == 0


def write_limits(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_duration_s: [1,", r"limits limits\.yaml is not valid YAML: line 1, column \d+: "),
        ("- 60\n- 3600\n", r"limits limits\.yaml: expected 'key: value' lines at the top level, got a list"),
        ("min_duraton_s: 30\n", r"limits limits\.yaml: unknown field 'min_duraton_s'"),
        ("limits:\n  max_duraton_s: 30\n", r"limits limits\.yaml: unknown field 'max_duraton_s'"),
        ("min_duration_s: -5\n", r"limits limits\.yaml: 'min_duration_s': Input should be greater than 0"),
        (
            "min_duration_s: 600\nmax_duration_s: 300\n",
            r"limits limits\.yaml: min_duration_s \(600\) must be below max_duration_s \(300\)",
        ),
        ("max_speed_kmh: {bycicle: 30}\n", r"'max_speed_kmh': unknown vehicle type\(s\) \['bycicle'\]"),
        ("max_speed_kmh: {foot: 0}\n", r"'max_speed_kmh': speeds must be positive km/h, got \{'foot': 0.0\}"),
    ],
)
def test_bad_limits_file_names_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ContractLimits.from_yaml(write_limits(tmp_path, text))


def test_limits_file_that_is_missing_or_a_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"limits file not found: .*nope\.yaml"):
        ContractLimits.from_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="is a folder, not a YAML file"):
        ContractLimits.from_yaml(tmp_path)


def test_speed_limits_given_for_some_vehicles_keep_the_defaults_for_the_rest(tmp_path: Path) -> None:
    limits = ContractLimits.from_yaml(write_limits(tmp_path, "limits:\n  max_speed_kmh: {foot: 10}\n"))
    assert limits.speed_limit("foot") == 10.0
    assert limits.speed_limit("car") == 110.0
    assert limits.speed_limit("hovercraft") == limits.speed_limit(None) == 120.0
    assert ContractLimits.from_yaml(write_limits(tmp_path, "")) == ContractLimits()


def text_staged(start_ts: list[str | None], **text_columns: list[str | None]) -> pl.DataFrame:
    """Staged rows as a hand-edited validated-trips file may hold them: timestamps and numbers as text."""
    rows = [bad(f"t{i}") for i in range(len(start_ts))]
    return staged(*rows).with_columns(
        pl.Series("start_ts", start_ts, dtype=pl.String),
        *(pl.Series(name, values, dtype=pl.String) for name, values in text_columns.items()),
    )


def test_text_timestamps_parse_as_iso_instants() -> None:
    frame = text_staged(
        [
            "2026-03-02T11:30:00+03:00",  # Nairobi's offset: 08:30 UTC
            "2026-03-02T08:30:00Z",
            "2026-03-02 08:30:00.000000+00:00",  # a Datetime cast to text by polars
            "2026-03-02T08:30:00",  # no offset: UTC
            "2026-03-02 08:30",
            "2026-03-02 11:30+0300",
        ]
    )
    result = validate_trips(frame)
    assert result.rows_valid == 6
    assert result.valid["start_ts"].to_list() == [T0] * 6


def test_wrong_text_in_a_validated_file_is_quarantined_not_raised() -> None:
    frame = text_staged(
        ["yesterday", "2026-03-02T08:30:00Z", "2026-03-02T08:30:00Z", "2026-03-02T08:30:00Z"],
        origin_lat=["-1.2921", "-1.2921", "north", " -1.2921 "],
        temperature_c=["21.5", "21.5", "21.5", "warm"],
    ).drop("raw")  # a validated-trips file has no raw column: the quarantine records the row as given
    result = validate_trips(frame)
    assert result.rows_in == result.rows_valid + result.rows_quarantined == 4
    assert result.valid["trip_id"].to_list() == ["t1"]
    assert result.valid["origin_lat"].to_list() == [-1.2921]
    assert result.valid["temperature_c"].to_list() == [21.5]
    quarantine = result.quarantine
    assert quarantine["reason"].to_list() == ["unparseable_timestamp", "missing_value", "invalid_value"]
    raw = [json.loads(r) for r in quarantine["raw"]]
    assert [r["start_ts"] for r in raw] == ["yesterday", "2026-03-02T08:30:00Z", "2026-03-02T08:30:00Z"]
    assert (raw[1]["origin_lat"], raw[2]["temperature_c"]) == ("north", "warm")


def test_a_column_of_another_kind_is_quarantined_not_raised() -> None:
    frame = staged(bad("t1"), bad("t2", courier_id=None)).with_columns(
        pl.Series("courier_id", [[1, 2], None]),  # a list where text belongs
        pl.Series("start_ts", [1.5, 2.5]),  # a number where a timestamp belongs
    )
    result = validate_trips(frame)
    assert result.rows_valid == 0
    assert result.quarantine["reasons"].to_list() == [
        ["unparseable_timestamp", "invalid_value"],
        ["unparseable_timestamp"],
    ]


def test_load_trips_reads_text_timestamps_from_a_validated_file(tmp_path: Path) -> None:
    path = tmp_path / "valid.parquet"
    text_staged(["2026-03-02T11:30:00+03:00", "noon"]).drop("raw").write_parquet(path)
    result = load_trips(path)
    assert result.valid["start_ts"].to_list() == [T0]
    assert result.reasons == {"unparseable_timestamp": 1}


def test_load_trips_without_source_names_a_file_that_is_not_validated_trips(tmp_path: Path) -> None:
    legs = tmp_path / "legs.csv"
    legs.write_text("trip_id,start_ts\nx,2026-03-02T08:30:00Z\n")
    with pytest.raises(
        ValueError, match=r"legs\.csv is not a Parquet file of validated trips; pass --source"
    ):
        load_trips(legs)
    other = tmp_path / "other.parquet"
    pl.DataFrame({"trip_id": ["x"], "start_ts": [T0]}).write_parquet(other)
    with pytest.raises(ValueError, match=r"other\.parquet is not a file of validated trips: missing columns"):
        load_trips(other)
