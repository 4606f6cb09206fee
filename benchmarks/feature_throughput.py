"""Feature-build throughput, run by hand (a benchmark, not a test; prints trips/s):

    .venv/bin/python benchmarks/feature_throughput.py [n_legs]     # default 1,000,000

Builds features for n random legs (default 1M) through the serving path (frozen aggregates) and the
training path (as-of snapshots), and compares with a per-row pandas + h3 `apply` on a 20k sample that
does the same work (cells, parents, grid distance, distance, bearing, local clock, aggregate lookups).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import h3
import numpy as np
import pandas as pd
import polars as pl

from features import AggregateTable, FeatureSpec, FrozenAggregates, build_features
from features.levels import chains

ZONES = ("Africa/Nairobi", "America/New_York")
CENTRES = ((-1.29, 36.82), (40.73, -73.99))
FIRST_DAY = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 60
T = TypeVar("T")


def random_legs(n: int, seed: int, with_duration: bool) -> pl.DataFrame:
    """Legs within ~10 km of two city centres over 60 days (seeded)."""
    rng = np.random.default_rng(seed)
    city = rng.integers(0, len(ZONES), n)
    centre = np.array(CENTRES)[city]
    offsets = rng.normal(0, 0.05, (n, 4))
    start_us = int(FIRST_DAY.timestamp() * 1e6) + rng.integers(0, DAYS * 86_400_000_000, n)
    legs = pl.DataFrame(
        {
            "trip_id": np.arange(n).astype(str),
            "origin_lat": centre[:, 0] + offsets[:, 0],
            "origin_lng": centre[:, 1] + offsets[:, 1],
            "dest_lat": centre[:, 0] + offsets[:, 2],
            "dest_lng": centre[:, 1] + offsets[:, 3],
            "start_ts": pl.Series(start_us).cast(pl.Datetime("us", "UTC")),
            "tz": np.array(ZONES)[city],
            "courier_id": np.char.add("c", rng.integers(0, 2000, n).astype(str)),
            "vehicle_type": np.array(["motorbike", "car", "bicycle"])[rng.integers(0, 3, n)],
        }
    )
    return legs.with_columns(duration_s=pl.lit(rng.uniform(120, 5400, n))) if with_duration else legs


def timed(label: str, n: int, run: Callable[[], T]) -> tuple[T, float]:
    """Run once; print wall seconds, trips/s and CPU seconds (other load on the machine inflates wall time)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"{label:<48} {seconds:7.2f} s {n / seconds:>11,.0f} trips/s  (cpu {cpu:6.2f} s)")
    return result, seconds


def pandas_row(row: pd.Series, spec: FeatureSpec, lookup: dict[str, dict[tuple, tuple[int, float]]]) -> dict:
    """The same features for one leg with scalar h3 / math / zoneinfo calls."""
    origin = h3.latlng_to_cell(row.origin_lat, row.origin_lng, 9)
    dest = h3.latlng_to_cell(row.dest_lat, row.dest_lng, 9)
    cells = {
        (end, res): h3.cell_to_parent(c, res)
        for end, c in (("origin", origin), ("dest", dest))
        for res in (8, 7, 6)
    }
    try:
        grid = h3.grid_distance(cells["origin", 8], cells["dest", 8])
    except h3.H3BaseException:
        grid = None
    p1, p2 = math.radians(row.origin_lat), math.radians(row.dest_lat)
    dl = math.radians(row.dest_lng - row.origin_lng)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    km = 2 * 6371.0088 * math.asin(math.sqrt(a))
    bearing = (
        math.degrees(
            math.atan2(
                math.sin(dl) * math.cos(p2),
                math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl),
            )
        )
        + 360
    ) % 360
    local = row.start_ts.to_pydatetime().astimezone(ZoneInfo(row.tz))
    band = spec.band_of_hour()[local.hour]
    keys = {
        "origin_cell": (h3.str_to_int(cells["origin", 8]), band),
        "origin_parent": (h3.str_to_int(cells["origin", 7]), band),
        "od_cell": (h3.str_to_int(cells["origin", 7]), h3.str_to_int(cells["dest", 7]), band),
        "od_parent": (h3.str_to_int(cells["origin", 6]), h3.str_to_int(cells["dest", 6]), band),
        "band": (band,),
        "global": (0,),
    }
    values = {}
    for chain in ("origin", "od"):
        value = None
        for level in reversed(chains(spec)[chain]):
            n, total = lookup[level.name].get(keys.get(level.name, ()), (0, 0.0))
            value = (
                total / n
                if value is None
                else (total + spec.shrinkage_trips * value) / (n + spec.shrinkage_trips)
            )
        values[chain] = value
    return {
        "km": km,
        "bearing": bearing,
        "grid": grid,
        "hour": local.hour,
        "weekday": local.isoweekday(),
        **values,
    }


def pandas_baseline(legs: pl.DataFrame, frozen: FrozenAggregates, spec: FeatureSpec) -> float:
    lookup = {
        name: {row[:-2]: (row[-2], row[-1]) for row in table.iter_rows()}
        for name, table in frozen.tables.items()
    }
    frame = legs.to_pandas()
    label = f"pandas + h3 apply, {len(frame):,} legs"
    _, seconds = timed(label, len(frame), lambda: frame.apply(pandas_row, axis=1, args=(spec, lookup)))
    return seconds


def main(n: int = 1_000_000, repeats: int = 3) -> None:
    print(f"polars threads: {pl.thread_pool_size()}, load average: {os.getloadavg()[0]:.1f}")
    spec = FeatureSpec()
    history = random_legs(n, seed=1, with_duration=True)
    legs = random_legs(n, seed=2, with_duration=False)
    table, _ = timed(
        f"AggregateTable.from_trips, {n:,} trips", n, lambda: AggregateTable.from_trips(history, spec)
    )
    frozen = table.freeze(date(2024, 3, 1))
    build_features(legs.head(1000), frozen, spec)  # warm-up
    serving = min(
        timed(f"build_features serving (frozen), {n:,} legs", n, lambda: build_features(legs, frozen, spec))[
            1
        ]
        for _ in range(repeats)
    )
    timed(f"build_features training (as-of), {n:,} legs", n, lambda: build_features(legs, table, spec))
    sample = 20_000
    per_row = pandas_baseline(legs.head(sample), frozen, spec) * n / sample
    print(
        f"best serving: {n / serving:,.0f} trips/s; pandas + h3 extrapolated to {n:,} legs: {per_row:.0f} s"
    )
    print(f"polars serving is {per_row / serving:.0f}x faster than the per-row apply")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
