"""The columns every leg is keyed by, computed by one function for history and for requests alike."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from features.calendar import LOCAL_DATETIME, local_time_stages
from features.cells import cell_stages
from features.plans import Stages, apply_stages, cached_stages
from features.spec import FeatureSpec

AS_OF_DAY = "as_of_day"  # UTC date of the leg's start: the aggregate snapshot a training row may see
ALL_TRIPS = "all_trips"  # constant key of the global level


def leg_key_stages(zones: Sequence[str], spec: FeatureSpec) -> Stages:
    """H3 cells at every resolution the spec uses, the local clock and the snapshot day (built once per
    spec and set of zones)."""

    def build() -> list[list[pl.Expr]]:
        return [
            *cell_stages(spec.resolutions_needed()),
            *local_time_stages(zones, spec),
            [pl.col("start_ts").dt.date().alias(AS_OF_DAY), pl.lit(0, pl.Int8).alias(ALL_TRIPS)],
        ]

    return cached_stages("leg_keys", spec, tuple(zones), build)


def with_leg_keys(frame: pl.LazyFrame, zones: Sequence[str], spec: FeatureSpec) -> pl.LazyFrame:
    """Add H3 cells at every resolution the spec uses, the local clock and the snapshot day."""
    return apply_stages(frame, leg_key_stages(zones, spec)).drop(LOCAL_DATETIME)
