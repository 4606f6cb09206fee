"""Local clock of a leg: hour, minute, weekday, weekend, holiday and hour band in the leg's own zone.

`start_ts` is UTC; `tz` names the zone of the local clock. A frame may mix zones: each zone's rows get
that zone's conversion (one vectorized `convert_time_zone` per distinct zone, picked with when/then),
so DST is applied per instant. The cost grows with the number of distinct zones in one batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date

import polars as pl

from features.plans import apply_stages
from features.spec import FeatureSpec

LOCAL_TIME_COLUMNS = (
    "local_date",
    "local_hour",
    "minute_of_day",
    "weekday",
    "is_weekend",
    "is_holiday",
    "hour_band",
)


def local_datetime(zones: Sequence[str]) -> pl.Expr:
    """`start_ts` as a naive local wall-clock datetime, for a frame whose `tz` takes the given values."""
    utc = pl.col("start_ts")
    if not zones:
        return pl.lit(None, pl.Datetime("us"))
    branches = [
        pl.when(pl.col("tz") == zone).then(utc.dt.convert_time_zone(zone).dt.replace_time_zone(None))
        for zone in zones
    ]
    return pl.coalesce(branches)


def holiday_flag(
    zones: Sequence[str], holidays: Mapping[str, Sequence[date]], local_date: pl.Expr | None = None
) -> pl.Expr:
    """True when `local_date` (default: the column) is a listed holiday of the row's zone (False for zones
    without a list)."""
    listed = [zone for zone in zones if holidays.get(zone)]
    if not listed:
        return pl.lit(False)
    local_date = pl.col("local_date") if local_date is None else local_date
    checks = [
        pl.when(pl.col("tz") == zone).then(
            local_date.is_in(pl.Series(holidays[zone], dtype=pl.Date).implode())
        )
        for zone in listed
    ]
    return pl.coalesce(checks).fill_null(False)


def cyclic(value: str | pl.Expr, period: float) -> tuple[pl.Expr, pl.Expr]:
    """(sin, cos) of a periodic value, so that the end of a cycle sits next to its start."""
    value = pl.col(value) if isinstance(value, str) else value
    angle = value.cast(pl.Float64) * (2 * math.pi / period)
    return angle.sin(), angle.cos()


LOCAL_DATETIME = "_local"  # intermediate column: the local wall clock, converted once, read four times


def local_time_stages(zones: Sequence[str], spec: FeatureSpec) -> list[list[pl.Expr]]:
    """The expressions of the local-clock columns (LOCAL_TIME_COLUMNS), in three dependent stages; they
    leave the intermediate LOCAL_DATETIME column behind.

    `weekday` is the day type the model reads: a public holiday reads as `spec.holiday_weekday` (Sunday by
    default), because holidays are too rare for the trees to learn from `is_holiday` alone."""
    local = pl.col(LOCAL_DATETIME)
    is_holiday = holiday_flag(zones, spec.holidays, local.dt.date())
    weekday = local.dt.weekday().cast(pl.Int8)
    if spec.holiday_weekday is not None:
        weekday = pl.when(is_holiday).then(pl.lit(spec.holiday_weekday, pl.Int8)).otherwise(weekday)
    return [
        [local_datetime(zones).alias(LOCAL_DATETIME)],
        [
            local.dt.date().alias("local_date"),
            local.dt.hour().cast(pl.Int8).alias("local_hour"),
            (local.dt.hour().cast(pl.Int16) * 60 + local.dt.minute().cast(pl.Int16)).alias("minute_of_day"),
            weekday.alias("weekday"),
            is_holiday.cast(pl.Int8).alias("is_holiday"),
        ],
        [
            pl.col("weekday").is_in(list(spec.weekend_days)).cast(pl.Int8).alias("is_weekend"),
            pl.col("local_hour")
            .replace_strict(list(range(24)), spec.band_of_hour(), return_dtype=pl.Int8)
            .alias("hour_band"),
        ],
    ]


def with_local_time(frame: pl.LazyFrame, zones: Sequence[str], spec: FeatureSpec) -> pl.LazyFrame:
    """Add the local-clock columns (LOCAL_TIME_COLUMNS) for legs whose `tz` is one of `zones`."""
    return apply_stages(frame, local_time_stages(zones, spec)).drop(LOCAL_DATETIME)
