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


def shrunk_column(level: Level) -> str:
    """The (intermediate) column holding a level's shrunk log speed."""
    return f"{level.name}_shrunk_log_speed"


def shrinkage_stages(spec: FeatureSpec) -> list[list[pl.Expr]]:
    """Every level's shrunk log speed as its own column, one stage per distance from the global level.

    The module docstring's recursion, with each expression reading its parent's column instead of nesting
    the parent's whole expression: polars plans a nested chain in time that grows with its depth, and on
    a small batch planning is most of the cost (docs/decisions/polars-executor.md).
    Every level has one parent, whichever chain it is in (the chains share only their roots).
    """
    k = spec.shrinkage_trips
    parent: dict[Level, Level | None] = {}
    for chain in chains(spec).values():
        for level, above in zip(chain, (*chain[1:], None), strict=True):
            if parent.setdefault(level, above) != above:
                raise ValueError(f"level {level.name} has two parents")

    def depth(level: Level) -> int:
        above = parent[level]
        return 0 if above is None else 1 + depth(above)

    stages: list[list[pl.Expr]] = [[] for _ in range(max(map(depth, parent)) + 1)]
    for level in parent:
        above = parent[level]
        if above is None:
            value = pl.when(pl.col(level.trips) > 0).then(pl.col(level.log_speed_sum) / pl.col(level.trips))
        else:
            value = (pl.col(level.log_speed_sum) + k * pl.col(shrunk_column(above))) / (
                pl.col(level.trips) + k
            )
        stages[depth(level)].append(value.alias(shrunk_column(level)))
    return stages


def aggregate_feature_stages(spec: FeatureSpec) -> list[list[pl.Expr]]:
    """Model inputs from the per-level statistics columns (`{level}_trips`, `{level}_log_speed_sum`)
    and `haversine_km`: the shrinkage stages, then the features read from them."""
    chain = chains(spec)
    courier, global_level = chain["courier"]
    # a courier without history in the window reads as no courier: both are the "unknown courier" case
    has_courier = pl.col(COURIER).is_not_null() & (pl.col(courier.trips) > 0)
    od_log_speed = pl.col(shrunk_column(chain["od"][0]))
    return [
        *shrinkage_stages(spec),
        [
            pl.col(shrunk_column(chain["origin"][0])).alias("origin_log_speed"),
            pl.col(chain["origin"][0].trips).alias("origin_trips"),
            pl.col(shrunk_column(chain["dest"][0])).alias("dest_log_speed"),
            pl.col(chain["dest"][0].trips).alias("dest_trips"),
            od_log_speed.alias("od_log_speed"),
            pl.col(chain["od"][0].trips).alias("od_trips"),
            # what a routing engine's free-flow ETA would say: distance at the pair's typical speed
            (pl.col("haversine_km") / od_log_speed.exp() * 3600.0).alias("prior_duration_s"),
            pl.when(has_courier)
            .then(pl.col(shrunk_column(courier)) - pl.col(shrunk_column(global_level)))
            .alias("courier_log_speed_factor"),
            pl.when(has_courier).then(pl.col(courier.trips)).alias("courier_trips"),
        ],
    ]
