"""Validated request legs -> the contract frame `EtaModel.features` reads (one row per leg, input order)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter

import numpy as np
import polars as pl

from features.live import LiveLegs
from serving.schemas import LegPlace

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
FLOAT_COLUMNS = ("origin_lat", "origin_lng", "dest_lat", "dest_lng")
OPTIONAL_FLOATS = ("road_distance_km", "temperature_c", "precipitation_mm")
OPTIONAL_TEXT = ("courier_id", "vehicle_type")
LEG_SCHEMA: dict[str, pl.DataType] = {
    **{name: pl.Float64() for name in FLOAT_COLUMNS},
    "start_ts": pl.Datetime("us", "UTC"),
    "tz": pl.String(),
    **{name: pl.String() for name in OPTIONAL_TEXT},
    **{name: pl.Float64() for name in OPTIONAL_FLOATS},
}


def epoch_us(moment: datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime (no float rounding)."""
    return (moment - EPOCH) // MICROSECOND


def legs_frame(legs: Sequence[LegPlace], departures: Sequence[datetime]) -> pl.DataFrame:
    """One row per leg; `departures` are aware datetimes, one per leg (any offset; stored as UTC)."""
    if len(legs) != len(departures):
        raise ValueError(f"{len(legs)} legs but {len(departures)} departure times")
    names = (*FLOAT_COLUMNS, *OPTIONAL_TEXT, *OPTIONAL_FLOATS, "tz")
    rows = map(attrgetter(*names), legs)  # one call per leg, not one per leg and column
    columns = dict(zip(names, zip(*rows, strict=True), strict=True)) if legs else {name: [] for name in names}
    # integers given a Datetime("us") dtype are read as microseconds: no cast, no reordering query after
    columns["start_ts"] = [epoch_us(moment) for moment in departures]
    return pl.DataFrame({name: columns[name] for name in LEG_SCHEMA}, schema=LEG_SCHEMA)


# Below this many legs a request's features are computed by the live executor (features.live), from there
# by polars: the two cost the same near 1,000 legs (docs/decisions/live-features.md)
LIVE_MAX_LEGS = 500


def model_input(legs: Sequence[LegPlace], departures: Sequence[datetime]) -> pl.DataFrame | LiveLegs:
    """What `EtaModel.predict_quantiles` takes for these legs: `LiveLegs` for a small batch, else a frame."""
    if len(legs) >= LIVE_MAX_LEGS:
        return legs_frame(legs, departures)
    return live_legs(legs, departures)


def live_legs(legs: Sequence[LegPlace], departures: Sequence[datetime]) -> LiveLegs:
    """The legs as the live executor's columns (absent optional numbers are NaN)."""
    if len(legs) != len(departures):
        raise ValueError(f"{len(legs)} legs but {len(departures)} departure times")
    names = (*FLOAT_COLUMNS, *OPTIONAL_TEXT, *OPTIONAL_FLOATS, "tz")
    rows = list(map(attrgetter(*names), legs))
    columns = dict(zip(names, zip(*rows, strict=True), strict=True)) if legs else dict.fromkeys(names, ())

    def floats(name: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in columns[name]], dtype=float)

    return LiveLegs(
        **{name: np.array(columns[name], dtype=float) for name in FLOAT_COLUMNS},
        start_us=np.array([epoch_us(moment) for moment in departures], dtype=np.int64),
        tz=list(columns["tz"]),
        courier_id=list(columns["courier_id"]),
        vehicle_type=list(columns["vehicle_type"]),
        **{name: floats(name) for name in OPTIONAL_FLOATS},
    )


def probe_frame(now: datetime | None = None) -> pl.DataFrame:
    """A fixed short leg (Nairobi CBD -> Westlands, departing now): the readiness probe's real prediction."""
    now = now or datetime.now(UTC)
    probe = LegPlace(
        origin_lat=-1.2841, origin_lng=36.8233, dest_lat=-1.2650, dest_lng=36.8040, tz="Africa/Nairobi"
    )
    return legs_frame([probe], [now])
