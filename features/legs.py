"""Bring a batch of legs (historical trips or live requests) to the columns and dtypes the features read."""

from __future__ import annotations

import polars as pl

UTC = "UTC"
# The contract's dtypes (data_contracts.schema.TripSchema), restated because the service ships without
# dataframely; tests/test_features_build.py pins each one to the contract.
REQUIRED_COLUMNS: dict[str, pl.DataType] = {
    "origin_lat": pl.Float64(),
    "origin_lng": pl.Float64(),
    "dest_lat": pl.Float64(),
    "dest_lng": pl.Float64(),
    "start_ts": pl.Datetime("us", UTC),
    "tz": pl.String(),
}
# Absent columns become nulls of these dtypes: a request need not carry what a source never has.
OPTIONAL_COLUMNS: dict[str, pl.DataType] = {
    "trip_id": pl.String(),
    "courier_id": pl.String(),
    "vehicle_type": pl.String(),
    "road_distance_km": pl.Float64(),
    "temperature_c": pl.Float64(),
    "precipitation_mm": pl.Float64(),
    "duration_s": pl.Float64(),
}


def _start_ts_utc(dtype: pl.DataType) -> pl.Expr:
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise ValueError(f"start_ts must be a timezone-aware Datetime (UTC instant), got {dtype}")
    return pl.col("start_ts").dt.convert_time_zone(UTC).dt.cast_time_unit("us")


def conform_legs(legs: pl.DataFrame | pl.LazyFrame, require: tuple[str, ...] = ()) -> pl.LazyFrame:
    """Select the feature inputs with fixed dtypes; optional columns that are absent become nulls.

    `require` names optional columns that must be present (the aggregates need `duration_s`).
    Raises ValueError naming any missing required column or a naive `start_ts`.
    """
    frame = legs.lazy()
    schema = frame.collect_schema()
    missing = [name for name in (*REQUIRED_COLUMNS, *require) if name not in schema]
    if missing:
        raise ValueError(f"legs are missing required columns: {missing}")
    exprs = [_start_ts_utc(schema["start_ts"])]
    exprs += [pl.col(name).cast(dtype) for name, dtype in REQUIRED_COLUMNS.items() if name != "start_ts"]
    exprs += [
        pl.col(name).cast(dtype) if name in schema else pl.lit(None, dtype).alias(name)
        for name, dtype in OPTIONAL_COLUMNS.items()
    ]
    return frame.select(exprs)


def zones_of(frame: pl.LazyFrame | pl.DataFrame) -> list[str]:
    """The distinct non-null `tz` values of a batch, sorted (the local-time branches depend on them)."""
    if isinstance(frame, pl.DataFrame) and frame.height < SMALL_BATCH_LEGS:
        # a live batch: a Python set beats a polars query's fixed cost (docs/decisions/polars-executor.md)
        return sorted({zone for zone in frame.get_column("tz").to_list() if zone is not None})
    zones = frame.lazy().select(pl.col("tz").drop_nulls().unique()).collect()["tz"]
    return sorted(zones.to_list())


# Below this many legs a query runs the way polars' eager DataFrame methods run it: on a small batch the
# lazy engine's fixed cost per query dominates (docs/decisions/polars-executor.md).
SMALL_BATCH_LEGS = 10_000


def _small_batch_flags() -> pl.QueryOptFlags | None:
    # `_eager` is what DataFrame.with_columns/select pass to collect; polars has no public name for it.
    # polars is pinned in uv.lock, and without it every query simply runs with the default flags.
    make = getattr(pl.QueryOptFlags, "_eager", None)
    return make() if make is not None else None


def collect_batch(frame: pl.LazyFrame, legs: int) -> pl.DataFrame:
    """Collect a feature query over `legs` rows, with the eager flags for small batches (same result)."""
    flags = _small_batch_flags() if legs < SMALL_BATCH_LEGS else None
    if flags is None:
        return frame.collect(engine="in-memory")
    return frame.collect(engine="in-memory", optimizations=flags)


def collect_all_batch(frames: list[pl.LazyFrame], legs: int) -> list[pl.DataFrame]:
    """`collect_batch` for several queries at once (run in parallel by polars)."""
    flags = _small_batch_flags() if legs < SMALL_BATCH_LEGS else None
    if flags is None:
        return pl.collect_all(frames, engine="in-memory")
    return pl.collect_all(frames, engine="in-memory", optimizations=flags)
