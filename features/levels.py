"""Aggregation levels (which keys a historical speed is grouped by) and the shrinkage chains across them.

Every level stores, per key and snapshot, the number of trips `n` and the sum of their log straight-line
speeds `s`. A chain runs from a fine level to the global one; each level is shrunk towards the next:

    v_root = s_root / n_root                       (null when the window holds no trip at all)
    v_i    = (s_i + k * v_{i+1}) / (n_i + k)       (k = spec.shrinkage_trips)

so a cell with no trips takes its parent's value, and one with n >> k keeps its own mean.
This is the credibility (empirical-Bayes) posterior mean with a fixed prior strength k.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from features.cells import cell_column
from features.geometry import leg_haversine_km
from features.keys import ALL_TRIPS
from features.spec import FeatureSpec

HOUR_BAND = "hour_band"
COURIER = "courier_id"


@dataclass(frozen=True)
class Level:
    """One grouping of historical trips, e.g. origin cell x hour band."""

    name: str
    keys: tuple[str, ...]

    @property
    def trips(self) -> str:
        return f"{self.name}_trips"

    @property
    def log_speed_sum(self) -> str:
        return f"{self.name}_log_speed_sum"


def chains(spec: FeatureSpec) -> dict[str, tuple[Level, ...]]:
    """Chain name -> levels, finest first, ending at the global level."""
    band = (HOUR_BAND,)
    root = (Level("band", band), Level("global", (ALL_TRIPS,)))

    def endpoint(end: str) -> tuple[Level, ...]:
        return (
            Level(f"{end}_cell", (cell_column(end, spec.aggregate_cell_resolution), *band)),
            Level(f"{end}_parent", (cell_column(end, spec.aggregate_parent_resolution), *band)),
            *root,
        )

    def pair(name: str, res: int) -> Level:
        return Level(name, (cell_column("origin", res), cell_column("dest", res), *band))

    return {
        "origin": endpoint("origin"),
        "dest": endpoint("dest"),
        "od": (pair("od_cell", spec.od_resolution), pair("od_parent", spec.od_parent_resolution), *root),
        "courier": (Level("courier", (COURIER,)), root[-1]),
    }


def distinct_levels(spec: FeatureSpec) -> tuple[Level, ...]:
    """Every level used by some chain, once, in a stable order."""
    seen: dict[str, Level] = {}
    for chain in chains(spec).values():
        for level in chain:
            seen.setdefault(level.name, level)
    return tuple(seen.values())


def log_speed(spec: FeatureSpec) -> pl.Expr:
    """log km/h of straight-line distance over duration, floored at spec.min_speed_kmh."""
    kmh = leg_haversine_km() / (pl.col("duration_s") / 3600.0)
    return kmh.clip(lower_bound=spec.min_speed_kmh).log()


def shrunk_log_speed(chain: tuple[Level, ...], k: float) -> pl.Expr:
    """The chain's finest level shrunk towards its parents (see the module docstring)."""
    root = chain[-1]
    value = pl.when(pl.col(root.trips) > 0).then(pl.col(root.log_speed_sum) / pl.col(root.trips))
    for level in reversed(chain[:-1]):
        value = (pl.col(level.log_speed_sum) + k * value) / (pl.col(level.trips) + k)
    return value


def aggregate_features(spec: FeatureSpec) -> list[pl.Expr]:
    """Model inputs from the per-level statistics columns (`{level}_trips`, `{level}_log_speed_sum`)
    and `haversine_km`."""
    chain = chains(spec)
    k = spec.shrinkage_trips
    has_courier = pl.col(COURIER).is_not_null()
    od_log_speed = shrunk_log_speed(chain["od"], k)
    courier, global_level = chain["courier"]
    global_mean = shrunk_log_speed((global_level,), k)
    return [
        shrunk_log_speed(chain["origin"], k).alias("origin_log_speed"),
        pl.col(chain["origin"][0].trips).alias("origin_trips"),
        shrunk_log_speed(chain["dest"], k).alias("dest_log_speed"),
        pl.col(chain["dest"][0].trips).alias("dest_trips"),
        od_log_speed.alias("od_log_speed"),
        pl.col(chain["od"][0].trips).alias("od_trips"),
        # what a routing engine's free-flow ETA would say: distance at the pair's typical speed
        (pl.col("haversine_km") / od_log_speed.exp() * 3600.0).alias("prior_duration_s"),
        pl.when(has_courier)
        .then(shrunk_log_speed(chain["courier"], k) - global_mean)
        .alias("courier_log_speed_factor"),
        pl.when(has_courier).then(pl.col(courier.trips)).alias("courier_trips"),
    ]
