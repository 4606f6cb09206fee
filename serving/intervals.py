"""Calibrated quantiles of a batch of legs -> the per-leg answer of POST /eta (vectorised: numpy, polars).

The answer is built as JSON-ready dicts in the shape of `serving.schemas.LegEta` (tests validate it
against that model): building 1,000 pydantic objects and 5,000 datetimes one by one cost more than the
model call itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from models.bundle import interval_taus, quantiles_at
from serving.errors import InvalidRequest, Loc
from serving.frames import EPOCH

SECONDS_DECIMALS = 1
ISO_LOCAL = "%Y-%m-%dT%H:%M:%S%:z"  # the same text as datetime.isoformat() for whole seconds
PYTHON_CLOCKS_MAX = 64


def supported_level(quantiles: Sequence[float]) -> float:
    """The widest central interval the trained quantiles support (0.05..0.95 -> 0.9)."""
    return round(quantiles[-1] - quantiles[0], 6)


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
    out = np.empty(flat.shape, dtype=object)
    for zone in sorted(set(zones)):
        rows = np.flatnonzero(np.asarray(zones, dtype=object) == zone) if len(set(zones)) > 1 else slice(None)
        instants = pl.Series(flat[rows].ravel() * 1000, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC"))
        text = instants.dt.convert_time_zone(zone).dt.to_string(ISO_LOCAL).to_numpy()
        out[rows] = text.reshape(flat[rows].shape)
    return out.reshape(epoch_s.shape)


def leg_payloads(
    q_pred: np.ndarray,
    quantiles: Sequence[float],
    levels: Sequence[float],
    departures_s: np.ndarray,
    zones: Sequence[str],
    leg_ids: Sequence[str | None],
) -> list[dict[str, object]]:
    """Per leg: median, all quantiles and each level's lower/upper seconds and arrival clock times.

    `departures_s` are the legs' departures in (fractional) seconds since the epoch."""
    taus = [0.5, *(tau for level in levels for tau in interval_taus(quantiles, level))]
    offsets = np.round(quantiles_at(q_pred, quantiles, taus), SECONDS_DECIMALS)  # median, lo, hi, lo, hi...
    clocks = local_iso(np.round(np.asarray(departures_s, dtype=float)[:, None] + offsets), zones).tolist()
    quantile_rows = np.round(q_pred, SECONDS_DECIMALS).tolist()
    seconds = offsets.tolist()
    return [
        {
            "leg_id": leg_ids[i],
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
        for i in range(len(zones))
    ]
