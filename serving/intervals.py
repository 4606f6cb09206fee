"""Calibrated quantiles of a batch of legs -> the per-leg answer of POST /eta (vectorised: numpy, polars).

The answer is written straight to JSON in the shape of `serving.schemas.LegEta` (tests validate it against
that model): building 1,000 pydantic objects and 5,000 datetimes one by one cost more than the model call
itself. A large batch is written column-wise by polars (the clocks, the per-leg objects and the JSON text
in native code); a few legs go through plain dicts, which is quicker below ~64 legs. Both write the same
bytes (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from pydantic_core import to_json

from models.bundle import interval_taus, quantiles_at
from serving.errors import InvalidRequest, Loc
from serving.frames import EPOCH
from serving.schemas import supported_level

SECONDS_DECIMALS = 1
ISO_LOCAL = "%Y-%m-%dT%H:%M:%S%:z"  # the same text as datetime.isoformat() for whole seconds
PYTHON_CLOCKS_MAX = 64  # clock strings: below this many, datetime.isoformat; above, polars
PYTHON_LEGS_MAX = 64  # answer legs: below this many, dicts + pydantic_core.to_json; above, polars columns


def check_levels(
    levels: Sequence[float], quantiles: Sequence[float], loc: Loc = ("levels",), indexed: bool = True
) -> None:
    """Every requested level must lie inside the trained quantiles; the error names the field (and index)."""
    widest = supported_level(quantiles)
    for i, level in enumerate(levels):
        if level > widest + 1e-9:
            raise InvalidRequest(
                (*loc, i) if indexed else loc,
                f"level {level} is wider than this model supports: its quantiles span "
                f"{quantiles[0]}..{quantiles[-1]}, so levels up to {widest}",
            )


def arrival(departure: datetime, seconds: float, zone: ZoneInfo) -> datetime:
    """Departure + seconds, to the whole second, on the clock of `zone`."""
    instant = round((departure - EPOCH).total_seconds() + float(seconds))
    return (EPOCH + timedelta(seconds=instant)).astimezone(zone)


def local_iso(epoch_s: np.ndarray, zones: Sequence[str]) -> np.ndarray:
    """ISO 8601 strings with the local UTC offset, same shape as `epoch_s` (one zone per row)."""
    epoch_s = np.asarray(epoch_s, dtype=np.int64)
    flat = epoch_s.reshape(len(zones), -1)
    if flat.size <= PYTHON_CLOCKS_MAX:  # a few values: plain datetimes beat a polars round trip
        return np.array(
            [
                [datetime.fromtimestamp(int(s), ZoneInfo(z)).isoformat() for s in row]
                for row, z in zip(flat, zones, strict=True)
            ],
            dtype=object,
        ).reshape(epoch_s.shape)
    return clock_series(flat, zones).to_numpy().reshape(epoch_s.shape)


def clock_series(epoch_s: np.ndarray, zones: Sequence[str]) -> pl.Series:
    """`local_iso` in polars: the strings of a (rows, k) array, row by row, as one flat String series."""
    rows, per_row = epoch_s.shape
    instants = pl.Series("t", epoch_s.ravel() * 1000, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC"))
    distinct = set(zones)
    if len(distinct) == 1:
        return instants.dt.convert_time_zone(zones[0]).dt.to_string(ISO_LOCAL)
    out = np.empty(rows * per_row, dtype=object)
    row_zones = np.asarray(zones, dtype=object)
    for zone in sorted(distinct):
        positions = (np.flatnonzero(row_zones == zone)[:, None] * per_row + np.arange(per_row)).ravel()
        out[positions] = instants.gather(positions).dt.convert_time_zone(zone).dt.to_string(ISO_LOCAL)
    return pl.Series("t", out, dtype=pl.String)


def legs_json(
    q_pred: np.ndarray,
    quantiles: Sequence[float],
    levels: Sequence[float],
    departures_s: np.ndarray,
    zones: Sequence[str],
    leg_ids: Sequence[str | None],
    elapsed: Sequence[float | None] | None = None,
) -> bytes:
    """The answer's `legs` array as JSON: per leg, the median, all quantiles and each level's lower/upper
    seconds and arrival clock times.

    `departures_s` are the moments the seconds count from (fractional seconds since the epoch): the
    departure, or departure + elapsed for a leg in progress (`elapsed`, echoed; None for a fresh leg)."""
    elapsed = list(elapsed) if elapsed is not None else [None] * len(zones)
    taus = [0.5, *(tau for level in levels for tau in interval_taus(quantiles, level))]
    offsets = np.round(quantiles_at(q_pred, quantiles, taus), SECONDS_DECIMALS)  # median, lo, hi, lo, hi...
    arrivals = np.round(np.asarray(departures_s, dtype=float)[:, None] + offsets).astype(np.int64)
    quantile_rows = np.round(q_pred, SECONDS_DECIMALS)
    if len(zones) <= PYTHON_LEGS_MAX:
        clocks = local_iso(arrivals, zones)
        return to_json(_leg_dicts(offsets, clocks, quantile_rows, levels, leg_ids, zones, elapsed))
    clocks = clock_series(arrivals, zones)
    frame = _legs_frame(offsets, clocks, quantile_rows, levels, leg_ids, zones, elapsed)
    return frame.write_json().encode()


def _leg_dicts(offsets, clocks, quantile_rows, levels, leg_ids, zones, elapsed) -> list[dict[str, object]]:
    seconds, clocks, quantile_rows = offsets.tolist(), clocks.tolist(), quantile_rows.tolist()
    return [
        {
            "leg_id": leg_ids[i],
            "tz": zones[i],
            "elapsed_s": elapsed[i],
            "median_s": seconds[i][0],
            "median_arrival": clocks[i][0],
            "quantiles_s": quantile_rows[i],
            "intervals": [
                {
                    "level": level,
                    "lower_s": seconds[i][1 + 2 * j],
                    "upper_s": seconds[i][2 + 2 * j],
                    "earliest_arrival": clocks[i][1 + 2 * j],
                    "latest_arrival": clocks[i][2 + 2 * j],
                }
                for j, level in enumerate(levels)
            ],
        }
        for i in range(len(seconds))
    ]


def _legs_frame(offsets, clocks: pl.Series, quantile_rows, levels, leg_ids, zones, elapsed) -> pl.DataFrame:
    """The same objects as `_leg_dicts`, as columns: `intervals` is a fixed-size array of structs."""
    legs, per_leg = offsets.shape
    lower = (np.arange(legs)[:, None] * per_leg + np.arange(1, per_leg, 2)).ravel()  # leg-major positions
    intervals = pl.DataFrame(
        {
            "level": pl.Series(np.tile(np.asarray(levels, dtype=float), legs)),
            "lower_s": offsets[:, 1::2].ravel(),
            "upper_s": offsets[:, 2::2].ravel(),
            "earliest_arrival": clocks.gather(lower),
            "latest_arrival": clocks.gather(lower + 1),
        }
    )
    return pl.DataFrame(
        {
            "leg_id": pl.Series(leg_ids, dtype=pl.String),
            "tz": pl.Series(zones, dtype=pl.String),
            "elapsed_s": pl.Series(elapsed, dtype=pl.Float64),
            "median_s": offsets[:, 0],
            "median_arrival": clocks.gather(np.arange(legs) * per_leg),
            "quantiles_s": quantile_rows,
            "intervals": intervals.select(pl.struct(pl.all())).to_series().reshape((legs, len(levels))),
        }
    )
