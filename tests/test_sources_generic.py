"""Generic adapter: the shipped example mapping on a hand-written file, and clear errors for bad mappings."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from data_contracts.home import PROJECT_ROOT
from data_contracts.sources.generic import GenericAdapter, GenericMapping, MappingError, load_mapping
from data_contracts.validate import validate_trips

FIXTURES = Path(__file__).parent / "fixtures"
DELIVERIES = FIXTURES / "generic_deliveries.csv"
EXAMPLE = PROJECT_ROOT / "data_contracts" / "mappings" / "example_generic.yaml"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def write_mapping(tmp_path: Path, mapping: dict) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def contract_row(staged: pl.DataFrame, row_number: int) -> dict:
    return staged.filter(pl.col("row_number") == row_number).drop("raw").to_dicts()[0]


def test_example_mapping_maps_the_fixture_to_exact_contract_values() -> None:
    staged = GenericAdapter.from_yaml(EXAMPLE).stage(DELIVERIES)
    assert contract_row(staged, 1) == {
        "trip_id": "K-1001",
        "source": "kiez_couriers",
        "origin_lat": 52.52,
        "origin_lng": 13.405,
        "dest_lat": 52.53,
        "dest_lng": 13.42,
        "start_ts": utc(2024, 3, 4, 7, 15),  # 08:15 CET
        "tz": "Europe/Berlin",
        "duration_s": 1050.0,  # 17.5 min
        "courier_id": "rider-07",
        "vehicle_type": "bicycle",
        "road_distance_km": 2.1,
        "temperature_c": None,
        "precipitation_mm": None,
        "source_file": "generic_deliveries.csv",
        "row_number": 1,
    }
    # the second format, "%d.%m.%Y %H:%M"; and summer time (CEST) on 1 July
    assert contract_row(staged, 2)["start_ts"] == utc(2024, 3, 4, 8, 0)
    assert contract_row(staged, 6)["start_ts"] == utc(2024, 7, 1, 10, 0)


def test_example_mapping_quarantines_each_bad_row_with_its_reason() -> None:
    result = validate_trips(GenericAdapter.from_yaml(EXAMPLE).stage(DELIVERIES))
    assert dict(zip(result.quarantine["row_number"], result.quarantine["reason"], strict=True)) == {
        3: "unparseable_timestamp",  # 02:30 on 31 March 2024 does not exist in Berlin
        4: "duration_under_limit",  # 0.5 min
        5: "unparseable_timestamp",  # "yesterday noon"
        6: "missing_value",  # no drop-off latitude
        7: "duplicate_trip",  # K-1001 again
    }
    assert result.valid["trip_id"].to_list() == ["K-1001", "K-1002"]
    assert result.rows_in == result.rows_valid + result.rows_quarantined == 7


def test_duration_as_end_minus_start_and_other_units(tmp_path: Path) -> None:
    mapping = example()
    mapping["duration"] = {"end_ts": "delivered_at"}
    mapping["distance_unit"] = "mi"
    del mapping["columns"]["trip_id"]
    staged = GenericAdapter.from_yaml(write_mapping(tmp_path, mapping)).stage(DELIVERIES)
    assert staged["duration_s"].to_list()[:2] == [1050.0, 1200.0]  # 08:32:30 - 08:15:00, 09:20 - 09:00
    assert staged["road_distance_km"][0] == pytest.approx(2.1 * 1.609344)
    assert staged["trip_id"].to_list()[:2] == ["generic_deliveries.csv#1", "generic_deliveries.csv#2"]

    mapping["duration"] = {"column": "minutes_in_transit", "unit": "h"}
    staged = GenericAdapter.from_yaml(write_mapping(tmp_path, mapping)).stage(DELIVERIES)
    assert staged["duration_s"][0] == 17.5 * 3600


def test_parquet_input_stages_like_the_csv(tmp_path: Path) -> None:
    parquet = tmp_path / "deliveries.parquet"
    pl.read_csv(DELIVERIES).write_parquet(parquet)  # numbers typed as numbers, times still text
    adapter = GenericAdapter.from_yaml(EXAMPLE)
    from_csv = adapter.stage(DELIVERIES).drop("raw", "source_file")
    assert adapter.stage(parquet).drop("raw", "source_file").equals(from_csv)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["columns"].pop("origin_lat"), "missing field 'columns.origin_lat'"),
        (lambda m: m["columns"].update(pickup_latitude="x"), "unknown field 'columns.pickup_latitude'"),
        (lambda m: m.pop("timestamps"), "missing field 'timestamps'"),
        (lambda m: m.update(colour="red"), "unknown field 'colour'"),
        (lambda m: m["duration"].update(end_ts="delivered_at"), "give exactly one of 'column' or 'end_ts'"),
        (lambda m: m["duration"].update(unit="fortnight"), "'duration.unit'"),
        (lambda m: m["timestamps"].update(tz="Mars/Olympus"), "unknown IANA time zone 'Mars/Olympus'"),
        (lambda m: m["constants"].update(vehicle_type="rocket"), "'constants.vehicle_type'"),
        (
            lambda m: m["columns"].update(vehicle_type="mode"),
            "vehicle_type is given both as a column and as a constant",
        ),
    ],
)
def test_a_bad_mapping_names_the_field(tmp_path: Path, change, message: str) -> None:
    mapping = example()
    change(mapping)
    with pytest.raises(MappingError, match=f"mapping mapping.yaml: .*{message}"):
        load_mapping(write_mapping(tmp_path, mapping))


def test_a_file_without_the_mapped_columns_names_them() -> None:
    with pytest.raises(
        ValueError,
        match=r"not a 'kiez_couriers' \(generic mapping\) file: missing columns \['pickup_lat', 'pickup_lng'",
    ):
        GenericAdapter.from_yaml(EXAMPLE).stage(FIXTURES / "sendy_deliveries.csv")


def test_the_mapping_lists_every_column_it_reads() -> None:
    mapping = GenericMapping.model_validate(example())
    assert mapping.file_columns() == [
        "pickup_lat",
        "pickup_lng",
        "drop_lat",
        "drop_lng",
        "picked_up_at",
        "order_ref",
        "rider",
        "distance",
        "minutes_in_transit",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("source: [kiez,", r"mapping mapping\.yaml is not valid YAML: line 1, column \d+: "),
        (
            "- source\n- columns\n",
            r"mapping mapping\.yaml: expected 'key: value' lines at the top level, got a list",
        ),
    ],
)
def test_a_mapping_that_is_not_yaml_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(MappingError, match=message):
        load_mapping(path)


def test_a_mapping_that_is_missing_or_a_folder_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"mapping file not found: .*nope\.yaml"):
        load_mapping(tmp_path / "nope.yaml")
    with pytest.raises(MappingError, match="is a folder, not a YAML file"):
        load_mapping(tmp_path)


def typed_deliveries(time_zone: str | None) -> pl.DataFrame:
    """Two fixture rows with real Datetime columns, naive (a wall clock) or zoned."""
    return (
        pl.read_csv(DELIVERIES)
        .head(2)
        .with_columns(
            pl.Series(
                "picked_up_at", [dt.datetime(2024, 3, 4, 8, 15), dt.datetime(2024, 3, 4, 9, 0, 0, 250_000)]
            ),
            pl.Series("delivered_at", [dt.datetime(2024, 3, 4, 8, 32, 30), dt.datetime(2024, 3, 4, 9, 20)]),
        )
        .with_columns(pl.col("picked_up_at", "delivered_at").dt.replace_time_zone(time_zone))
    )


def mapping_with_other_formats(tmp_path: Path, end_ts: bool) -> Path:
    mapping = example()
    mapping["timestamps"]["formats"] = ["%d.%m.%Y %H:%M"]  # typed columns must not depend on these
    if end_ts:
        mapping["duration"] = {"end_ts": "delivered_at"}
    return write_mapping(tmp_path, mapping)


@pytest.mark.parametrize("end_ts", [False, True])
def test_parquet_naive_datetimes_are_wall_clocks_in_the_mapping_zone(tmp_path: Path, end_ts: bool) -> None:
    parquet = tmp_path / "deliveries.parquet"
    typed_deliveries(None).write_parquet(parquet)
    staged = GenericAdapter.from_yaml(mapping_with_other_formats(tmp_path, end_ts)).stage(parquet)
    # 08:15 and 09:00:00.25 Berlin (CET) are 07:15 and 08:00:00.25 UTC
    assert staged["start_ts"].to_list() == [utc(2024, 3, 4, 7, 15), utc(2024, 3, 4, 8, 0, 0, 250_000)]
    assert staged["duration_s"].to_list() == ([1050.0, 1199.75] if end_ts else [1050.0, 1200.0])
    assert json.loads(staged["raw"][1])["picked_up_at"] == "2024-03-04 09:00:00.250"
    assert validate_trips(staged).rows_valid == 2


@pytest.mark.parametrize(
    ("time_zone", "hours_behind_utc", "offset"), [("UTC", 0, "+00:00"), ("America/New_York", 5, "-05:00")]
)
def test_parquet_zoned_datetimes_are_the_instants_they_name(
    tmp_path: Path, time_zone: str, hours_behind_utc: int, offset: str
) -> None:
    parquet = tmp_path / "deliveries.parquet"
    typed_deliveries(time_zone).write_parquet(parquet)
    staged = GenericAdapter.from_yaml(mapping_with_other_formats(tmp_path, end_ts=True)).stage(parquet)
    # not re-localised to the mapping's Europe/Berlin: 08:15 in New York (EST) is 13:15 UTC
    h = hours_behind_utc
    assert staged["start_ts"].to_list() == [utc(2024, 3, 4, 8 + h, 15), utc(2024, 3, 4, 9 + h, 0, 0, 250_000)]
    assert staged["duration_s"].to_list() == [1050.0, 1199.75]
    assert json.loads(staged["raw"][0])["picked_up_at"] == f"2024-03-04 08:15:00{offset}"
