"""Descriptive tables of completed trips for exploration (notebooks, reports): speed, time of day, hexagons.

Speed here is straight-line speed (haversine km / hours): comparable across sources that lack road distance.
"""

from __future__ import annotations

import polars as pl

from features.calendar import local_datetime
from features.cells import latlng_to_cell
from features.geometry import leg_haversine_km


def with_trip_measures(trips: pl.DataFrame) -> pl.DataFrame:
    """Adds local hour, ISO weekday, straight-line km and km/h to contract rows."""
    zones = trips["tz"].unique().drop_nulls().to_list()
    local = local_datetime(zones)
    return trips.with_columns(
        local.dt.hour().alias("local_hour"),
        local.dt.weekday().alias("weekday"),
        leg_haversine_km().alias("haversine_km"),
    ).with_columns((pl.col("haversine_km") / (pl.col("duration_s") / 3600.0)).alias("speed_kmh"))


def duration_speed_quantiles(trips: pl.DataFrame, source: str) -> pl.DataFrame:
    """Median and tails of duration (minutes) and straight-line speed for one source."""
    t = with_trip_measures(trips)
    minutes = pl.col("duration_s") / 60
    return t.select(
        pl.lit(source).alias("source"),
        pl.len().alias("trips"),
        minutes.quantile(0.1).alias("duration_p10_min"),
        minutes.median().alias("duration_p50_min"),
        minutes.quantile(0.9).alias("duration_p90_min"),
        pl.col("haversine_km").median().alias("km_p50"),
        pl.col("speed_kmh").median().alias("speed_p50_kmh"),
    )


def speed_by_hour_and_weekday(trips: pl.DataFrame) -> pl.DataFrame:
    """Median straight-line speed per (ISO weekday, local hour), with counts."""
    t = with_trip_measures(trips).filter(pl.col("haversine_km") > 0.2)
    return (
        t.group_by("weekday", "local_hour")
        .agg(pl.col("speed_kmh").median().alias("median_speed_kmh"), pl.len().alias("trips"))
        .sort("weekday", "local_hour")
    )


def hex_median_speed(trips: pl.DataFrame, resolution: int = 8, min_trips: int = 20) -> pl.DataFrame:
    """Median straight-line speed of legs starting in each H3 cell (int64 ids), cells with enough trips."""
    t = with_trip_measures(trips).filter(pl.col("haversine_km") > 0.2)
    return (
        t.with_columns(latlng_to_cell("origin_lat", "origin_lng", resolution).alias("cell"))
        .group_by("cell")
        .agg(pl.col("speed_kmh").median().alias("median_speed_kmh"), pl.len().alias("trips"))
        .filter(pl.col("trips") >= min_trips)
        .sort("cell")
    )


def quarantine_breakdown(quarantine: pl.DataFrame, source: str) -> pl.DataFrame:
    """Quarantined rows per reason for one source."""
    if quarantine.height == 0:
        return pl.DataFrame(
            {"source": [], "reason": [], "rows": []},
            schema={"source": pl.String, "reason": pl.String, "rows": pl.UInt32},
        )
    return (
        quarantine.group_by("reason")
        .len("rows")
        .with_columns(pl.lit(source).alias("source"))
        .select("source", "reason", "rows")
        .sort("rows", descending=True)
    )
