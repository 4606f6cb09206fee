"""Deterministic dirty rows: each carries one known defect, named by the reason the contract must give.

`injected_defect` is null on clean rows and otherwise one of `DEFECTS`, which are the reason codes of
`data_contracts.validate`, so a test can check quarantine reasons against it row by row. Dirty rows replace
clean ones (the row count is unchanged); a duplicate is a re-sent copy of an earlier clean row.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from data_contracts.synthetic.city import offset_points

DEFECTS: tuple[str, ...] = (
    "missing_value",  # duration lost
    "unparseable_timestamp",  # garbage in start_local
    "out_of_range_coord",  # decimal point slipped: latitude x100
    "null_island",  # GPS fix never arrived: origin 0.0, 0.0
    "non_positive_duration",  # clocks out of order: negative duration
    "duration_under_limit",  # tapped 'delivered' right after pickup
    "duration_over_limit",  # forgot to check out: 4 h to a day
    "implausible_speed",  # GPS jump: 10-20 km away within two minutes
    "duplicate_trip",  # the same record sent twice
)
BAD_TIMESTAMPS = ("", "N/A", "2024-02-30 25:61:00", "yesterday 14:00", "00/00/0000 00:00")
DIRTY_STREAM = 17  # random-stream tag


def _pick_rows(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted dirty row positions and a defect code for each (a duplicate needs an earlier clean row)."""
    n_dirty = min(n - 1, round(n * fraction)) if n > 1 else 0
    rows = np.sort(rng.choice(n, size=max(n_dirty, 0), replace=False))
    kinds = rng.permutation(np.arange(rows.size) % len(DEFECTS))
    duplicate = DEFECTS.index("duplicate_trip")
    clean = np.setdiff1d(np.arange(n), rows)
    has_earlier_clean = np.searchsorted(clean, rows) > 0
    kinds = np.where((kinds == duplicate) & ~has_earlier_clean, DEFECTS.index("missing_value"), kinds)
    return rows, kinds


def inject_defects(raw: pl.DataFrame, fraction: float, rng: np.random.Generator) -> pl.DataFrame:
    """Corrupt `round(fraction * rows)` rows of a raw partition, recording the defect in `injected_defect`."""
    n = raw.height
    rows, kinds = _pick_rows(n, fraction, rng)
    u, bearing, jump_km = (
        rng.random(rows.size),
        rng.uniform(0, 2 * np.pi, rows.size),
        rng.uniform(10, 20, rows.size),
    )

    def where(defect: str) -> tuple[np.ndarray, np.ndarray]:
        mask = kinds == DEFECTS.index(defect)
        return rows[mask], mask

    source = np.arange(n)
    clean = np.setdiff1d(source, rows)
    dup_rows, _ = where("duplicate_trip")
    source[dup_rows] = clean[np.searchsorted(clean, dup_rows) - 1]  # the clean row just before
    frame = raw[source]

    column = {
        c: frame[c].to_numpy().copy()
        for c in ("duration_s", "origin_lat", "origin_lng", "dest_lat", "dest_lng")
    }
    start_local = frame["start_local"].to_numpy().astype(object)
    at, _ = where("missing_value")
    column["duration_s"][at] = np.nan
    at, mask = where("unparseable_timestamp")
    start_local[at] = np.array(BAD_TIMESTAMPS, dtype=object)[(u[mask] * len(BAD_TIMESTAMPS)).astype(int)]
    at, _ = where("out_of_range_coord")
    column["dest_lat"][at] *= 100.0
    at, _ = where("null_island")
    column["origin_lat"][at], column["origin_lng"][at] = 0.0, 0.0
    at, _ = where("non_positive_duration")
    column["duration_s"][at] *= -1.0
    at, mask = where("duration_under_limit")
    column["duration_s"][at] = np.round(5.0 + 50.0 * u[mask])
    at, mask = where("duration_over_limit")
    column["duration_s"][at] = np.round((4.5 + 19.5 * u[mask]) * 3600.0)
    at, mask = where("implausible_speed")
    column["duration_s"][at] = np.round(60.0 + 60.0 * u[mask])
    lat, lng = offset_points(column["dest_lat"][at], column["dest_lng"][at], jump_km[mask], bearing[mask])
    column["dest_lat"][at], column["dest_lng"][at] = np.round(lat, 6), np.round(lng, 6)

    defect = np.full(n, None, dtype=object)
    defect[rows] = np.array(DEFECTS, dtype=object)[kinds]
    return frame.with_columns(
        *(pl.Series(name, values, dtype=pl.Float64).fill_nan(None) for name, values in column.items()),
        pl.Series("start_local", start_local.tolist(), dtype=pl.String),
        pl.Series("injected_defect", defect.tolist(), dtype=pl.String),
    )
