"""`build_features`: the one feature definition for training batches, backtests and live requests."""

from __future__ import annotations

import polars as pl

from features.aggregates import AggregateSource
from features.calendar import cyclic
from features.cells import cell_column, grid_distance
from features.geometry import bearing_deg, leg_haversine_km
from features.keys import with_leg_keys
from features.legs import SMALL_BATCH_LEGS, collect_batch, conform_legs, zones_of
from features.levels import aggregate_feature_stages
from features.plans import Stages, apply_stages, cached_stages
from features.spec import FeatureSpec


def vehicle_type_code(vehicle_types: tuple[str, ...]) -> pl.Expr:
    """Index in the spec's vocabulary (the contract's lowercase names); len(vocabulary) for any other; null stays null.

    Matching is exact: adapters and request validation bring values onto the contract's names.
    """
    code = pl.col("vehicle_type").replace_strict(
        list(vehicle_types), list(range(len(vehicle_types))), default=len(vehicle_types), return_dtype=pl.Int8
    )
    return pl.when(pl.col("vehicle_type").is_not_null()).then(code)


def leg_feature_stages(spec: FeatureSpec) -> list[list[pl.Expr]]:
    """Geometry, clock and context features of a keyed leg (cells and local clock already added)."""
    res = spec.grid_distance_resolution
    region = spec.region_resolution
    hour_sin, hour_cos = cyclic("minute_of_day", 24 * 60)
    weekday_sin, weekday_cos = cyclic(pl.col("weekday") - 1, 7)
    bearing_sin, bearing_cos = cyclic("bearing_deg", 360.0)  # from the column: the trig runs once
    return [
        [
            leg_haversine_km().alias("haversine_km"),
            grid_distance(cell_column("origin", res), cell_column("dest", res)).alias(
                f"grid_distance_r{res}"
            ),
            bearing_deg("origin_lat", "origin_lng", "dest_lat", "dest_lng").alias("bearing_deg"),
            hour_sin.alias("hour_sin"),
            hour_cos.alias("hour_cos"),
            weekday_sin.alias("weekday_sin"),
            weekday_cos.alias("weekday_cos"),
            vehicle_type_code(spec.vehicle_types).alias("vehicle_type_code"),
            (pl.col("precipitation_mm") > spec.rain_threshold_mm).cast(pl.Int8).alias("is_raining"),
            pl.col(cell_column("origin", region)).alias(f"origin_region_r{region}"),
            pl.col(cell_column("dest", region)).alias(f"dest_region_r{region}"),
        ],
        [bearing_sin.alias("bearing_sin"), bearing_cos.alias("bearing_cos")],
    ]


def _feature_stages(spec: FeatureSpec) -> Stages:
    """Everything after the aggregate lookup, down to the model-input dtypes (built once per spec)."""

    def build() -> list[list[pl.Expr]]:
        columns = {**spec.feature_dtypes(), **spec.context_dtypes()}
        return [
            *leg_feature_stages(spec),
            *aggregate_feature_stages(spec),
            [pl.col(name).cast(dtype) for name, dtype in columns.items()],
        ]

    return cached_stages("features", spec, None, build)


def build_features(
    legs: pl.DataFrame | pl.LazyFrame, aggregates: AggregateSource, spec: FeatureSpec
) -> pl.DataFrame:
    """Feature matrix for a batch of legs, one row per leg in input order.

    Columns: `spec.feature_dtypes()` (model inputs, in order) then `spec.context_dtypes()` (trip_id and
    regions, not model inputs). With an `AggregateTable` each leg sees the snapshot of its own start day
    (training); with `FrozenAggregates` every leg sees the frozen snapshot (serving).
    """
    if aggregates.spec != spec:
        raise ValueError(
            f"aggregates were built with spec {aggregates.spec.version}, not this spec {spec.version}"
        )
    conformed = conform_legs(legs)  # checks the columns now, converts lazily
    if isinstance(legs, pl.DataFrame) and legs.height < SMALL_BATCH_LEGS:
        # a live batch: its zones are read from the input as it is, and conforming and keying run as one
        # query (one fewer collect, ~0.3 ms of a 1-leg build)
        n, zones = legs.height, zones_of(legs)
    else:
        # a lazy input's size is known only once collected: it runs with the default flags, and only once
        size_hint = legs.height if isinstance(legs, pl.DataFrame) else SMALL_BATCH_LEGS
        collected = collect_batch(conformed, size_hint)
        n, zones, conformed = collected.height, zones_of(collected), collected.lazy()
    keyed = with_leg_keys(conformed, zones, spec)
    *features, selected = _feature_stages(spec)
    frame = apply_stages(aggregates.stats_for(keyed, n), tuple(features))
    return collect_batch(frame.select(selected), n)
