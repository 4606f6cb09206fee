"""FeatureSpec: JSON round trip, a stored feature list that no longer matches is refused, invalid configs fail."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest
from pydantic import ValidationError

from features import FeatureSpec, HourBand


def test_json_round_trip_with_non_default_values() -> None:
    spec = FeatureSpec(
        version="2.3",
        cell_resolutions=(7, 9),
        lookback_days=14,
        shrinkage_trips=5.5,
        hour_bands=(HourBand(name="day", start_hour=7), HourBand(name="night", start_hour=19)),
        holidays={"Africa/Nairobi": (date(2019, 12, 12),)},
    )
    text = spec.to_json()
    assert FeatureSpec.from_json(text) == spec
    stored = json.loads(text)
    assert stored["version"] == "2.3"
    assert stored["holidays"] == {"Africa/Nairobi": ["2019-12-12"]}
    assert stored["features"][:5] == [
        {"name": "origin_cell_r9", "dtype": "Int64"},
        {"name": "origin_cell_r7", "dtype": "Int64"},
        {"name": "dest_cell_r9", "dtype": "Int64"},
        {"name": "dest_cell_r7", "dtype": "Int64"},
        {"name": "haversine_km", "dtype": "Float64"},
    ]
    assert FeatureSpec.from_json(FeatureSpec().to_json()) == FeatureSpec()


def test_default_feature_names_and_dtypes() -> None:
    dtypes = FeatureSpec().feature_dtypes()
    assert list(dtypes)[:7] == [
        "origin_cell_r9",
        "origin_cell_r8",
        "origin_cell_r7",
        "dest_cell_r9",
        "dest_cell_r8",
        "dest_cell_r7",
        "haversine_km",
    ]
    assert dtypes["grid_distance_r8"] == pl.Int32()
    assert dtypes["is_holiday"] == pl.Int8()
    assert FeatureSpec().context_dtypes() == {
        "trip_id": pl.String(),
        "origin_region_r6": pl.Int64(),
        "dest_region_r6": pl.Int64(),
    }
    assert FeatureSpec().resolutions_needed() == (9, 8, 7, 6)


def test_a_stored_feature_list_this_code_would_not_build_is_refused() -> None:
    stored = json.loads(FeatureSpec().to_json())
    stored["features"].append({"name": "weather_index", "dtype": "Float64"})
    with pytest.raises(ValueError, match="differ from this code"):
        FeatureSpec.from_json(json.dumps(stored))


@pytest.mark.parametrize(
    "bad",
    [
        {"hour_bands": (HourBand(name="a", start_hour=6), HourBand(name="b", start_hour=6))},
        {"aggregate_cell_resolution": 7, "aggregate_parent_resolution": 7},
        {"od_resolution": 6, "od_parent_resolution": 7},
        {"cell_resolutions": (9, 9)},
        {"region_resolution": 16},
        {"shrinkage_trips": 0.0},
        {"lookback_days": 0},
        {"unknown_field": 1},
    ],
)
def test_invalid_configurations_fail(bad: dict) -> None:
    with pytest.raises(ValidationError):
        FeatureSpec(**bad)
