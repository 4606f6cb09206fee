"""Point-in-time historical speed aggregates: as-of snapshots for training, one frozen snapshot for serving.

THE RULE. A leg starting on UTC day d sees, at every level, exactly the historical trips whose end
(start_ts + duration_s) falls in [d - W days, d) at 00:00 UTC, W = spec.lookback_days. Trips that ended
earlier on day d itself are left out too: day granularity is conservative, never leaky.

Training (`AggregateTable`) keeps, per level and key, cumulative trip counts and log-speed sums by end
day. The window statistics at day d are `cum(last day <= d-1) - cum(last day <= d-W-1)`, found with two
as-of joins: no dense per-day table and no Python loop. Serving (`FrozenAggregates`) evaluates the very
same function once at the cut-off day and joins requests to the result, so a leg gets identical
statistics through both paths when the snapshot day matches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl

from features.geometry import leg_haversine_km
from features.keys import AS_OF_DAY, with_leg_keys
from features.legs import SMALL_BATCH_LEGS, collect_all_batch, collect_batch, conform_legs, zones_of
from features.levels import Level, distinct_levels, log_speed
from features.spec import FeatureSpec

DAY = "day"
CUM_TRIPS, CUM_SUM = "cum_trips", "cum_log_speed_sum"
TRIPS, SUM = "trips", "log_speed_sum"
META_FILE = "frozen_aggregates.json"


class AggregateSource(Protocol):
    """Something that adds `{level}_trips` and `{level}_log_speed_sum` columns to keyed legs."""

    spec: FeatureSpec

    def stats_for(self, rows: pl.LazyFrame, legs: int = ...) -> pl.LazyFrame: ...


def _daily(keyed: pl.LazyFrame, keys: tuple[str, ...]) -> pl.DataFrame:
    """Per key and end day: trips and log-speed sum of the trips that ended that day."""
    return (
        keyed.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in keys))
        .group_by(*keys, "end_day")
        .agg(pl.len().cast(pl.Int64).alias(TRIPS), pl.col("log_speed").sum().alias(SUM))
        .collect()
    )


def _cumulative(daily: list[pl.DataFrame], keys: tuple[str, ...]) -> pl.DataFrame:
    """Per key and end day: running totals of trips and log speeds up to and including that day, from
    daily totals of any number of parts (a day's trips may be split across parts: they are summed)."""
    running = (
        pl.concat(daily)
        .lazy()
        .group_by(*keys, "end_day")
        .agg(pl.col(TRIPS).sum(), pl.col(SUM).sum())
        .sort(*keys, "end_day")
        .select(
            *keys,
            pl.col("end_day").alias(DAY),
            pl.col(TRIPS).cum_sum().over(keys).alias(CUM_TRIPS),
            pl.col(SUM).cum_sum().over(keys).alias(CUM_SUM),
        )
    )
    return running.sort(DAY).collect()


def daily_totals(trips: pl.DataFrame | pl.LazyFrame, spec: FeatureSpec) -> dict[str, pl.DataFrame]:
    """Per level: trips and log-speed sum per key and end day. Totals of disjoint sets of trips add up,
    so a large history is summarised part by part (a day partition per worker) and combined with
    `AggregateTable.from_daily`. Trips with a non-positive duration or shorter than
    `spec.aggregate_min_km` are left out."""
    conformed = conform_legs(trips, require=("duration_s",)).collect()
    keyed = (
        with_leg_keys(conformed.lazy(), zones_of(conformed.lazy()), spec)
        .filter(pl.col("duration_s") > 0, leg_haversine_km() >= spec.aggregate_min_km)
        .with_columns(
            (pl.col("start_ts") + pl.duration(microseconds=(pl.col("duration_s") * 1e6).cast(pl.Int64)))
            .dt.date()
            .alias("end_day"),
            log_speed(spec).alias("log_speed"),
        )
        .filter(pl.col("log_speed").is_finite())
        .collect()
        .lazy()
    )
    return {level.name: _daily(keyed, level.keys) for level in distinct_levels(spec)}


def window_stats(
    cumulative: pl.DataFrame, pairs: pl.LazyFrame, keys: tuple[str, ...], lookback: int
) -> pl.LazyFrame:
    """Trips and log-speed sum per (keys, as_of_day) over trips that ended in [as_of_day - W, as_of_day)."""
    right = cumulative.lazy()
    bounds = pairs.with_columns(
        (pl.col(AS_OF_DAY) - timedelta(days=1)).alias("_last_day"),
        (pl.col(AS_OF_DAY) - timedelta(days=lookback + 1)).alias("_before_day"),
    )
    for bound, suffix in (("_last_day", "_hi"), ("_before_day", "_lo")):
        bounds = (
            bounds.sort(bound)
            .join_asof(
                right, left_on=bound, right_on=DAY, by=list(keys), strategy="backward", check_sortedness=False
            )
            .rename({CUM_TRIPS: CUM_TRIPS + suffix, CUM_SUM: CUM_SUM + suffix})
            .drop(DAY)
        )
    return bounds.select(
        *keys,
        AS_OF_DAY,
        (pl.col(CUM_TRIPS + "_hi").fill_null(0) - pl.col(CUM_TRIPS + "_lo").fill_null(0)).alias(TRIPS),
        (pl.col(CUM_SUM + "_hi").fill_null(0.0) - pl.col(CUM_SUM + "_lo").fill_null(0.0)).alias(SUM),
    )


def _level_columns(keyed: pl.DataFrame, stats: pl.LazyFrame, level: Level, on: list[str]) -> pl.LazyFrame:
    """One level's two statistics columns, aligned with `keyed`'s rows; no match means no trips.

    Only the key columns take part in the join: joining the wide frame nine times costs far more
    (docs/decisions/polars-executor.md).
    """
    joined = keyed.lazy().select(on).join(stats, on=on, how="left", maintain_order="left")
    return joined.select(
        pl.col(TRIPS).fill_null(0).alias(level.trips),
        pl.col(SUM).fill_null(0.0).alias(level.log_speed_sum),
    )


def _with_level_columns(keyed: pl.DataFrame, per_level: list[pl.LazyFrame]) -> pl.LazyFrame:
    # in-memory engine: the streaming one is slower on order-keeping left joins
    # (docs/decisions/polars-executor.md)
    frames = collect_all_batch(per_level, keyed.height)
    columns = [column for frame in frames for column in frame.get_columns()]
    if any(len(column) != keyed.height for column in columns):
        raise RuntimeError("aggregate statistics are not unique per key")  # would misalign rows
    return keyed.hstack(columns).lazy()


def _utc_day(as_of: date | datetime) -> date:
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise ValueError("as_of datetime must be timezone-aware")
        return as_of.astimezone(UTC).date()
    return as_of


@dataclass(frozen=True)
class AggregateTable:
    """Cumulative per-level statistics over a history of completed trips (the training path)."""

    spec: FeatureSpec
    cumulative: dict[str, pl.DataFrame]

    @classmethod
    def from_trips(cls, trips: pl.DataFrame | pl.LazyFrame, spec: FeatureSpec) -> AggregateTable:
        """Build from completed trips (contract columns, `duration_s` required); see `daily_totals`."""
        return cls.from_daily([daily_totals(trips, spec)], spec)

    @classmethod
    def from_daily(cls, parts: list[dict[str, pl.DataFrame]], spec: FeatureSpec) -> AggregateTable:
        """Build from the `daily_totals` of disjoint parts of a history: the same table as `from_trips` on
        all of it (log-speed sums up to float rounding, as the additions come in another order)."""
        return cls(
            spec,
            {
                level.name: _cumulative([part[level.name] for part in parts], level.keys)
                for level in distinct_levels(spec)
            },
        )

    def stats_for(self, rows: pl.LazyFrame, legs: int = SMALL_BATCH_LEGS) -> pl.LazyFrame:
        """Each row's statistics at its own `as_of_day` snapshot (`legs`: the batch size, if known)."""
        keyed = collect_batch(rows, legs)  # materialized once: every level reads its keys from it
        per_level = []
        for level in distinct_levels(self.spec):
            on = [*level.keys, AS_OF_DAY]
            pairs = keyed.lazy().select(on).unique()
            stats = window_stats(self.cumulative[level.name], pairs, level.keys, self.spec.lookback_days)
            per_level.append(_level_columns(keyed, stats, level, on))
        return _with_level_columns(keyed, per_level)

    def freeze(self, as_of: date | datetime) -> FrozenAggregates:
        """The snapshot a leg starting on `as_of`'s UTC day sees; served unchanged for every later request."""
        day = _utc_day(as_of)
        tables = {}
        for level in distinct_levels(self.spec):
            cumulative = self.cumulative[level.name]
            pairs = cumulative.lazy().select(level.keys).unique().with_columns(pl.lit(day).alias(AS_OF_DAY))
            stats = window_stats(cumulative, pairs, level.keys, self.spec.lookback_days)
            tables[level.name] = stats.filter(pl.col(TRIPS) > 0).drop(AS_OF_DAY).sort(level.keys).collect()
        return FrozenAggregates(self.spec, day, tables)


MISSING = (0, 0.0)  # a key the snapshot does not hold: no trips


class LevelIndex:
    """A frozen snapshot's statistics as one dictionary per level, key tuple -> (trips, log-speed sum): the
    live executor's lookup (`features.live`). A key with a null never matches, as in the joins."""

    def __init__(self, tables: dict[str, pl.DataFrame], spec: FeatureSpec) -> None:
        from features.live import LivePlan

        self.plan = LivePlan(spec)
        self.by_level: dict[str, dict[tuple, tuple[int, float]]] = {}
        for level in distinct_levels(spec):
            table = tables[level.name]
            keys = zip(*(table.get_column(k).to_list() for k in level.keys), strict=True)
            stats = zip(table.get_column(TRIPS).to_list(), table.get_column(SUM).to_list(), strict=True)
            self.by_level[level.name] = dict(zip(keys, stats, strict=True))

    def lookup(self, level: Level, key_columns: list) -> tuple[np.ndarray, np.ndarray]:
        """Per leg, the level's trips and log-speed sum (0 and 0.0 where the snapshot has no such key)."""
        table, n = self.by_level[level.name], len(key_columns[0])
        columns = [column if isinstance(column, list) else column.tolist() for column in key_columns]
        hits = [table.get(key, MISSING) for key in zip(*columns, strict=True)]
        return np.fromiter((h[0] for h in hits), np.int64, n), np.fromiter(
            (h[1] for h in hits), np.float64, n
        )


@dataclass(frozen=True)
class FrozenAggregates:
    """Per-level statistics frozen at one snapshot day (the serving path; saved with the model)."""

    spec: FeatureSpec
    as_of: date
    tables: dict[str, pl.DataFrame]

    def stats_for(self, rows: pl.LazyFrame, legs: int = SMALL_BATCH_LEGS) -> pl.LazyFrame:
        """Every row gets the frozen snapshot, whatever its own start day (`legs`: the batch size)."""
        keyed = collect_batch(rows, legs)
        per_level = [
            _level_columns(keyed, self.tables[level.name].lazy(), level, list(level.keys))
            for level in distinct_levels(self.spec)
        ]
        return _with_level_columns(keyed, per_level)

    def level_index(self) -> LevelIndex:
        """The snapshot as dictionaries for the live executor (built on first use, kept with the snapshot)."""
        cached = self.__dict__.get("_level_index")
        if cached is None:
            cached = LevelIndex(self.tables, self.spec)
            object.__setattr__(self, "_level_index", cached)  # frozen dataclass: a cache, not state
        return cached

    def save(self, directory: str | Path) -> None:
        """Write one parquet file per level and a JSON file with the snapshot day and the spec."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, table in self.tables.items():
            table.write_parquet(directory / f"{name}.parquet")
        meta = {
            "as_of": self.as_of.isoformat(),
            "spec": json.loads(self.spec.to_json()),
            "levels": list(self.tables),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> FrozenAggregates:
        """Read what `save` wrote."""
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        spec = FeatureSpec.from_json(json.dumps(meta["spec"]))
        tables = {name: pl.read_parquet(directory / f"{name}.parquet") for name in meta["levels"]}
        return cls(spec, date.fromisoformat(meta["as_of"]), tables)
