"""build_features: training and serving agree, optional inputs may be absent, columns follow the spec."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from features import AggregateTable, FeatureSpec, FrozenAggregates, build_features
from features.cells import latlng_to_cell
from tests.test_features_aggregates import random_trips

NAIROBI, NEW_YORK = "Africa/Nairobi", "America/New_York"
FEATURES_DIR = Path(__file__).resolve().parent.parent / "features"


def _history() -> pl.DataFrame:
    """Deterministic trips in two zones over ten days."""
    return random_trips(600, seed=11, first_day=date(2024, 3, 1), days=10)


def _requests(day: date) -> pl.DataFrame:
    """Legs starting during one UTC day, in both zones, with every optional column filled."""
    legs = random_trips(150, seed=12, first_day=day, days=1)
    return legs.drop("duration_s").with_columns(
        pl.lit("Motorbike").alias("vehicle_type"),
        pl.lit(7.0).alias("road_distance_km"),
        pl.lit(21.5).alias("temperature_c"),
        pl.lit(0.4).alias("precipitation_mm"),
    )


def test_training_and_serving_paths_give_identical_features(tmp_path: Path) -> None:
    spec = FeatureSpec(lookback_days=5)
    table = AggregateTable.from_trips(_history(), spec)
    day = date(2024, 3, 8)
    legs = _requests(day)
    training = build_features(legs, table, spec)
    frozen = table.freeze(day)
    serving = build_features(legs, frozen, spec)
    assert_frame_equal(serving, training, check_exact=True)
    frozen.save(tmp_path / "aggregates")
    reloaded = FrozenAggregates.load(tmp_path / "aggregates")
    assert reloaded.as_of == day
    assert reloaded.spec == spec
    assert_frame_equal(build_features(legs.lazy(), reloaded, reloaded.spec), training, check_exact=True)
    assert training["od_trips"].max() > 1  # the comparison covers populated aggregates
    # another snapshot day is a different snapshot: the comparison above is not vacuous
    assert not build_features(legs, table.freeze(day - timedelta(days=2)), spec).equals(training)


def test_small_batches_run_with_eager_flags_and_give_the_same_features(monkeypatch) -> None:
    import features.legs

    spec = FeatureSpec(lookback_days=5)
    table = AggregateTable.from_trips(_history(), spec)
    legs = _requests(date(2024, 3, 8))
    assert legs.height < features.legs.SMALL_BATCH_LEGS  # below: the live-request flags
    small = build_features(legs, table.freeze(date(2024, 3, 8)), spec)
    monkeypatch.setattr(features.legs, "SMALL_BATCH_LEGS", 0)  # every batch runs with default flags
    default = build_features(legs, table.freeze(date(2024, 3, 8)), spec)
    assert_frame_equal(small, default, check_exact=True)
    assert small["od_trips"].max() > 1


def test_a_null_or_unseen_courier_gets_no_courier_features() -> None:
    spec = FeatureSpec(lookback_days=5)
    frozen = AggregateTable.from_trips(_history(), spec).freeze(date(2024, 3, 8))
    legs = pl.concat(
        [
            _requests(date(2024, 3, 8)),
            # a leg whose courier (a key of its own level) is null, and one with a courier never seen
            _requests(date(2024, 3, 8)).head(2).with_columns(pl.Series("courier_id", [None, "nobody"])),
        ],
        how="diagonal_relaxed",
    )
    built = build_features(legs, frozen, spec)
    assert built["od_trips"].max() > 1
    assert built["courier_trips"].tail(2).to_list() == [None, None]


def test_columns_and_dtypes_follow_the_spec_and_rows_keep_their_order() -> None:
    spec = FeatureSpec()
    table = AggregateTable.from_trips(_history(), spec)
    legs = _requests(date(2024, 3, 8)).reverse()
    out = build_features(legs, table, spec)
    assert out.schema == pl.Schema({**spec.feature_dtypes(), **spec.context_dtypes()})
    assert out["trip_id"].to_list() == legs["trip_id"].to_list()
    origin_r9 = legs.select(latlng_to_cell("origin_lat", "origin_lng", 9)).to_series()
    assert out["origin_cell_r9"].to_list() == origin_r9.to_list()


def test_optional_inputs_are_passed_through_and_coded() -> None:
    spec = FeatureSpec()
    start = datetime(2024, 3, 8, 9, tzinfo=UTC)
    legs = pl.DataFrame(
        {
            "origin_lat": [-1.2864] * 4,
            "origin_lng": [36.8172] * 4,
            "dest_lat": [-1.3192] * 4,
            "dest_lng": [36.9278] * 4,
            "start_ts": [start] * 4,
            "tz": [NAIROBI] * 4,
            "vehicle_type": ["motorbike", "van", "scooter", None],
            "road_distance_km": [12.0, None, 3.5, None],
            "temperature_c": [20.0, None, 18.0, 25.0],
            "precipitation_mm": [0.0, 0.5, None, 0.1],
            "courier_id": ["c1", None, "c1", "c9"],
        },
        schema_overrides={"start_ts": pl.Datetime("us", "UTC")},
    )
    out = build_features(legs, AggregateTable.from_trips(_history(), spec), spec)
    assert out["vehicle_type_code"].to_list() == [0, 3, 5, None]
    assert out["road_distance_km"].to_list() == [12.0, None, 3.5, None]
    assert out["temperature_c"].to_list() == [20.0, None, 18.0, 25.0]
    assert out["is_raining"].to_list() == [0, 1, None, 0]
    # a known courier with history, no courier, the same courier again, a courier never seen: the last reads
    # as no courier (one "unknown courier" case for the trees and the conformal profiles)
    assert out["courier_trips"][0] == out["courier_trips"][2] > 0
    assert out["courier_log_speed_factor"][0] == out["courier_log_speed_factor"][2]
    assert out["courier_trips"].to_list()[1::2] == [None, None]
    assert out["courier_log_speed_factor"].to_list()[1::2] == [None, None]


def test_requests_with_only_required_columns() -> None:
    spec = FeatureSpec()
    legs = pl.DataFrame(
        {
            "origin_lat": [-1.2864, 40.7128],
            "origin_lng": [36.8172, -74.0060],
            "dest_lat": [-1.3192, 40.7306],
            "dest_lng": [36.9278, -73.9352],
            "start_ts": [datetime(2024, 3, 8, 9, tzinfo=UTC), datetime(2024, 3, 8, 15, tzinfo=UTC)],
            "tz": [NAIROBI, NEW_YORK],
        }
    )
    out = build_features(legs, AggregateTable.from_trips(_history(), spec).freeze(date(2024, 3, 8)), spec)
    absent = [
        "road_distance_km",
        "vehicle_type_code",
        "temperature_c",
        "precipitation_mm",
        "is_raining",
        "courier_trips",
        "courier_log_speed_factor",
        "trip_id",
    ]
    assert out.select(absent).null_count().row(0) == (2,) * len(absent)
    assert out["local_hour"].to_list() == [12, 10]
    assert out["haversine_km"][0] == pytest.approx(13.0, abs=0.5)
    # New York never appears in the Nairobi-centred history cells: speeds fall back to the band level
    assert out["origin_trips"][1] == 0
    assert out["origin_log_speed"][1] is not None


def test_bad_inputs_are_refused() -> None:
    spec = FeatureSpec()
    frozen = AggregateTable.from_trips(_history(), spec).freeze(date(2024, 3, 8))
    naive = pl.DataFrame(
        {
            "origin_lat": [0.5],
            "origin_lng": [0.5],
            "dest_lat": [0.6],
            "dest_lng": [0.6],
            "start_ts": [datetime(2024, 3, 8, 9)],
            "tz": [NAIROBI],
        }
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        build_features(naive, frozen, spec)
    with pytest.raises(ValueError, match=r"missing required columns: \['tz'\]"):
        build_features(naive.drop("tz"), frozen, spec)
    with pytest.raises(ValueError, match="spec"):
        build_features(naive, frozen, FeatureSpec(lookback_days=3))


def test_features_never_import_the_platform() -> None:
    forbidden = {"dagster", "bentoml", "mlflow", "evidently"}
    for path in FEATURES_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {name.split(".")[0] for name in names} & forbidden, f"{path.name} imports {names}"


def test_expression_stages_are_built_once_per_spec_and_zones() -> None:
    """The plan cache hands out the same expressions for the same spec and zones, new ones otherwise, and
    a batch built with cached stages equals one built from freshly made expressions."""
    from features import plans
    from features.keys import leg_key_stages, with_leg_keys
    from features.legs import conform_legs

    spec = FeatureSpec(lookback_days=5)
    first = leg_key_stages([NAIROBI], spec)
    assert leg_key_stages([NAIROBI], spec) is first
    assert leg_key_stages([NAIROBI, NEW_YORK], spec) is not first
    # a copy with other settings is another spec, even if it were given a freed spec's id
    other = spec.model_copy(update={"weekend_days": (5, 6)})
    assert leg_key_stages([NAIROBI], other) is not first

    frozen = AggregateTable.from_trips(_history(), spec).freeze(date(2024, 3, 8))
    legs = _requests(date(2024, 3, 8))  # a Friday (UTC)
    cached = build_features(legs, frozen, spec)
    plans._entries.clear()
    assert_frame_equal(build_features(legs, frozen, spec), cached)
    # the copy's own stages: Friday is a weekend day under its settings, not under the original's
    conformed = conform_legs(legs).collect()
    friday = with_leg_keys(conformed.lazy(), [NAIROBI, NEW_YORK], spec).collect()["weekday"] == 5
    weekend_copy = with_leg_keys(conformed.lazy(), [NAIROBI, NEW_YORK], other).collect()["is_weekend"]
    weekend_spec = with_leg_keys(conformed.lazy(), [NAIROBI, NEW_YORK], spec).collect()["is_weekend"]
    assert friday.sum() > 0
    assert (weekend_copy.filter(friday) == 1).all()
    assert (weekend_spec.filter(friday) == 0).all()


def test_the_leg_dtypes_are_the_contracts() -> None:
    """features/legs.py restates the contract's dtypes (the service ships without dataframely): they match."""
    from data_contracts.schema import TripSchema
    from features.legs import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

    contract = TripSchema.create_empty().schema
    declared = {**REQUIRED_COLUMNS, **OPTIONAL_COLUMNS}
    assert declared == {name: contract[name] for name in declared}
    assert set(contract) - set(declared) == {"source"}  # the one contract column conform_legs drops


@pytest.mark.parametrize("lazy", [False, True])
def test_a_batch_without_a_required_column_is_refused_by_name(lazy: bool) -> None:
    spec = FeatureSpec(lookback_days=5)
    frozen = AggregateTable.from_trips(_history(), spec).freeze(date(2024, 3, 8))
    legs = _requests(date(2024, 3, 8)).drop("tz")
    with pytest.raises(ValueError, match=r"missing required columns: \['tz'\]"):
        build_features(legs.lazy() if lazy else legs, frozen, spec)


def test_a_live_batch_and_the_same_legs_as_a_lazy_frame_get_the_same_features() -> None:
    """Live batches conform and key in one query, lazy inputs collect first: the same rows either way,
    with zones mixed and a categorical zone column."""
    spec = FeatureSpec(lookback_days=5)
    frozen = AggregateTable.from_trips(_history(), spec).freeze(date(2024, 3, 8))
    legs = _requests(date(2024, 3, 8))
    legs = legs.with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0)
        .then(pl.lit("Europe/London"))
        .otherwise(pl.col("tz"))
        .alias("tz")
    )
    live = build_features(legs.with_columns(pl.col("tz").cast(pl.Categorical)), frozen, spec)
    assert_frame_equal(live, build_features(legs.lazy(), frozen, spec), check_exact=True)
    assert live["hour_sin"].n_unique() > 1
