"""The columns every leg is keyed by, computed by one function for history and for requests alike."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from features.calendar import with_local_time
from features.cells import with_cells
from features.spec import FeatureSpec

AS_OF_DAY = "as_of_day"  # UTC date of the leg's start: the aggregate snapshot a training row may see
ALL_TRIPS = "all_trips"  # constant key of the global level


def with_leg_keys(frame: pl.LazyFrame, zones: Sequence[str], spec: FeatureSpec) -> pl.LazyFrame:
    """Add H3 cells at every resolution the spec uses, the local clock and the snapshot day."""
    frame = with_cells(frame, spec.resolutions_needed())
    frame = with_local_time(frame, zones, spec)
    return frame.with_columns(
        pl.col("start_ts").dt.date().alias(AS_OF_DAY),
        pl.lit(0, pl.Int8).alias(ALL_TRIPS),
    )
