"""The adapter registry, and rows in = valid + quarantined for every adapter on real or fixture files."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_contracts.home import PROJECT_ROOT
from data_contracts.sources import ADAPTER_NAMES, get_adapter
from data_contracts.sources.base import files_for, ingest

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE = PROJECT_ROOT / "data_contracts" / "mappings" / "example_generic.yaml"


def test_registry_names() -> None:
    assert ADAPTER_NAMES == ("sendy", "citibike", "nyc_taxi", "tlc_yellow", "generic", "synthetic")


@pytest.mark.parametrize("name", ["sendy", "citibike", "nyc_taxi", "tlc_yellow", "synthetic"])
def test_built_in_adapters_resolve_by_name(name: str) -> None:
    adapter = get_adapter(name)
    assert adapter.name == name
    with pytest.raises(ValueError, match="a mapping file is only for 'generic'"):
        get_adapter(name, mapping=EXAMPLE)


def test_generic_needs_its_mapping() -> None:
    assert get_adapter("generic", mapping=EXAMPLE).name == "kiez_couriers"
    with pytest.raises(ValueError, match="needs a YAML column mapping"):
        get_adapter("generic")


def test_unknown_source_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown source 'uber'; known sources: sendy, citibike"):
        get_adapter("uber")


@pytest.mark.parametrize(
    ("name", "path", "rows"),
    [
        ("sendy", FIXTURES / "sendy_deliveries.csv", 5),
        ("citibike", FIXTURES / "citibike", 10),
        ("nyc_taxi", FIXTURES / "nyc_taxi_sample.csv", 4),
        ("tlc_yellow", FIXTURES / "tlc_yellow", 7),
        ("generic", FIXTURES / "generic_deliveries.csv", 7),
    ],
)
def test_rows_in_equal_valid_plus_quarantined_on_fixtures(name: str, path: Path, rows: int) -> None:
    adapter = get_adapter(name, mapping=EXAMPLE if name == "generic" else None)
    result = ingest(adapter, path)
    assert result.rows_in == result.rows_valid + result.rows_quarantined == rows
    assert sum(result.reasons.values()) == result.rows_quarantined


def _data_rows(files: list[Path]) -> int:
    """Data rows counted the slow, obvious way: lines minus the header (no file has quoted newlines)."""
    return sum(len(f.read_text().splitlines()) - 1 for f in files)


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("name", "relative", "rows"),
    [
        ("sendy", "sendy_nairobi/deliveries.csv", 16_565),
        ("citibike", "citibike_jersey_city", 181_145),
        ("nyc_taxi", "nyc_taxi_sample/nyc_taxi.csv", 10_000),
    ],
)
def test_rows_in_equal_valid_plus_quarantined_on_real_files(
    shared_data: Path, name: str, relative: str, rows: int
) -> None:
    path = shared_data / relative
    if not path.exists():
        pytest.skip(f"{path} is absent")
    adapter = get_adapter(name)
    result = ingest(adapter, path)
    print(f"{name}:", result.summary())
    assert (
        result.rows_in
        == result.rows_valid + result.rows_quarantined
        == _data_rows(files_for(adapter, path))
        == rows
    )
    assert sum(result.reasons.values()) == result.rows_quarantined


@pytest.mark.parametrize("name", ["sendy", "citibike", "nyc_taxi", "tlc_yellow", "generic"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "trips.csv is not a readable CSV file: empty CSV"),
        # a binary blob reads as one junk header: the missing-columns error names what was expected
        (b"PAR1\xff\xfe\x00binary", r"trips.csv is not a .* file: missing columns "),
    ],
)
def test_a_file_that_is_not_csv_at_all_is_a_clear_error(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / "trips.csv"
    path.write_bytes(content)
    adapter = get_adapter(name, mapping=EXAMPLE if name == "generic" else None)
    with pytest.raises(ValueError, match=message):
        adapter.stage(path)


@pytest.mark.parametrize("name", ["sendy", "citibike", "nyc_taxi", "tlc_yellow", "generic"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            'a,b\n1,2\n3,"4\n5,6\n',
            "trips.csv is not a readable CSV file: line 3 opens a quoted field that is never closed",
        ),
        (
            "a,b\n1,2\n3,4\n5,6,7\n",
            "trips.csv is not a readable CSV file: line 4 has 3 fields, the header has 2",
        ),
        ('a,b\n1,2\n"3"x,4\n', "trips.csv is not a readable CSV file: line 3: ',' expected after '\"'"),
    ],
    ids=["unclosed_quote", "extra_field", "text_after_quote"],
)
def test_a_malformed_line_is_named_without_polars_advice(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / "trips.csv"
    path.write_text(content)
    adapter = get_adapter(name, mapping=EXAMPLE if name == "generic" else None)
    with pytest.raises(ValueError) as raised:
        adapter.stage(path)
    assert str(raised.value) == message  # nothing about truncate_ragged_lines or infer_schema_length


@pytest.mark.parametrize("name", ["tlc_yellow", "generic"])
def test_a_parquet_name_on_another_format_is_a_clear_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / "yellow_tripdata_2015-01.parquet"
    path.write_text("a,b\n1,2\n")
    adapter = get_adapter(name, mapping=EXAMPLE if name == "generic" else None)
    with pytest.raises(
        ValueError, match=r"yellow_tripdata_2015-01\.parquet is not a readable Parquet file: "
    ):
        adapter.stage(path)
