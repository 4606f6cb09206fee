"""Point-in-time aggregates: a SQLite oracle, the window edges, no leak from the future, and shrinkage."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, date, datetime, timedelta

import h3
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from data_contracts.geo import EARTH_RADIUS_KM
from features import AggregateTable, FeatureSpec, build_features
from features.keys import AS_OF_DAY, with_leg_keys
from features.legs import conform_legs, zones_of
from features.levels import distinct_levels

NAIROBI, NEW_YORK = "Africa/Nairobi", "America/New_York"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# a few hubs so that cells, pairs and couriers repeat
HUBS = [(-1.2864, 36.8172), (-1.2921, 36.8219), (-1.3192, 36.9278), (-1.2630, 36.8063)]


def trips_frame(rows: list[dict]) -> pl.DataFrame:
    """Trips from dicts with start (aware datetime), origin, dest, duration_s and optional tz/courier_id."""
    return pl.DataFrame(
        {
            "trip_id": [str(i) for i in range(len(rows))],
            "origin_lat": [r["origin"][0] for r in rows],
            "origin_lng": [r["origin"][1] for r in rows],
            "dest_lat": [r["dest"][0] for r in rows],
            "dest_lng": [r["dest"][1] for r in rows],
            "start_ts": [r["start"] for r in rows],
            "tz": [r.get("tz", NAIROBI) for r in rows],
            "duration_s": [float(r["duration_s"]) for r in rows],
            "courier_id": [r.get("courier_id") for r in rows],
        },
        schema_overrides={"start_ts": pl.Datetime("us", "UTC"), "courier_id": pl.String},
    )


def random_trips(n: int, seed: int, first_day: date, days: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    t0 = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    rows = []
    for _ in range(n):
        origin, dest = (HUBS[i] for i in rng.integers(0, len(HUBS), 2))
        jitter = rng.normal(0, 0.002, 4)
        rows.append(
            {
                "origin": (origin[0] + jitter[0], origin[1] + jitter[1]),
                "dest": (dest[0] + jitter[2], dest[1] + jitter[3]),
                "start": t0 + timedelta(seconds=int(rng.integers(0, days * 86400))),
                "duration_s": int(rng.integers(120, 7200)),
                "tz": NEW_YORK if rng.random() < 0.2 else NAIROBI,
                "courier_id": None if rng.random() < 0.1 else f"c{rng.integers(0, 6)}",
            }
        )
    return trips_frame(rows)


def keyed(legs: pl.DataFrame, spec: FeatureSpec) -> pl.LazyFrame:
    conformed = conform_legs(legs).collect().lazy()
    return with_leg_keys(conformed, zones_of(conformed), spec)


def _micros(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(microseconds=1)


def _haversine_km(origin: tuple[float, float], dest: tuple[float, float]) -> float:
    """Great-circle km with the math module (independent of the polars expression)."""
    p1, p2 = math.radians(origin[0]), math.radians(dest[0])
    dp, dl = p2 - p1, math.radians(dest[1] - origin[1])
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def _log_speed(row: dict, spec: FeatureSpec) -> float:
    km = _haversine_km((row["origin_lat"], row["origin_lng"]), (row["dest_lat"], row["dest_lng"]))
    return math.log(max(km / (row["duration_s"] / 3600), spec.min_speed_kmh))


def sqlite_oracle(history: pl.DataFrame, queries: pl.DataFrame, spec: FeatureSpec) -> dict[str, list]:
    """Per level and query row: (trips, sum of log speed) over trips ending in [day - W, day), by plain SQL.

    Only levels whose keys are all columns of `queries` are answered.
    """
    hist = keyed(history, spec).collect()
    key_columns = sorted({k for level in distinct_levels(spec) for k in level.keys} & set(queries.columns))
    con = sqlite3.connect(":memory:")
    con.execute(f"CREATE TABLE trips ({', '.join(key_columns)}, end_us INTEGER, log_speed REAL)")
    for row in hist.iter_rows(named=True):
        origin, dest = (row["origin_lat"], row["origin_lng"]), (row["dest_lat"], row["dest_lng"])
        if _haversine_km(origin, dest) < spec.aggregate_min_km:
            continue
        end_us = _micros(row["start_ts"]) + int(row["duration_s"]) * 1_000_000
        values = [row[k] for k in key_columns] + [end_us, _log_speed(row, spec)]
        con.execute(f"INSERT INTO trips VALUES ({', '.join('?' * len(values))})", values)
    con.execute(f"CREATE TABLE queries (qid INTEGER, {', '.join(key_columns)}, lo INTEGER, hi INTEGER)")
    for qid, row in enumerate(queries.iter_rows(named=True)):
        midnight = datetime(row[AS_OF_DAY].year, row[AS_OF_DAY].month, row[AS_OF_DAY].day, tzinfo=UTC)
        lo = _micros(midnight - timedelta(days=spec.lookback_days))
        values = [qid] + [row[k] for k in key_columns] + [lo, _micros(midnight)]
        con.execute(f"INSERT INTO queries VALUES ({', '.join('?' * len(values))})", values)
    oracle = {}
    for level in distinct_levels(spec):
        if not set(level.keys) <= set(key_columns):
            continue
        match = " AND ".join(f"t.{k} = q.{k}" for k in level.keys)
        sql = (
            "SELECT q.qid, COUNT(t.end_us), TOTAL(t.log_speed) FROM queries q LEFT JOIN trips t "
            f"ON {match} AND t.end_us >= q.lo AND t.end_us < q.hi GROUP BY q.qid ORDER BY q.qid"
        )
        oracle[level.name] = [(n, s) for _, n, s in con.execute(sql).fetchall()]
    return oracle


def test_as_of_statistics_equal_a_sqlite_oracle() -> None:
    spec = FeatureSpec(lookback_days=5)
    history = random_trips(500, seed=1, first_day=date(2024, 3, 1), days=20)
    queries = pl.concat(
        [history.drop("duration_s"), random_trips(200, 2, date(2024, 3, 1), 30).drop("duration_s")]
    )
    table = AggregateTable.from_trips(history, spec)
    keyed_queries = keyed(queries, spec)
    got = table.stats_for(keyed_queries).collect()
    oracle = sqlite_oracle(history, keyed_queries.collect(), spec)
    for level in distinct_levels(spec):
        assert got[level.trips].to_list() == [n for n, _ in oracle[level.name]], level.name
        assert got[level.log_speed_sum].to_list() == pytest.approx(
            [s for _, s in oracle[level.name]], abs=1e-9
        )
    assert max(got["od_cell_trips"]) > 1  # the oracle is not comparing empty windows only


def test_frozen_snapshot_equals_the_oracle_for_every_key() -> None:
    spec = FeatureSpec(lookback_days=5)
    history = random_trips(400, seed=3, first_day=date(2024, 3, 1), days=15)
    frozen = AggregateTable.from_trips(history, spec).freeze(date(2024, 3, 12))
    for level in distinct_levels(spec):
        table = frozen.tables[level.name]
        # every key the history has: the frozen table must hold exactly those with trips in the window
        every_key = keyed(history, spec).select(level.keys).unique().drop_nulls().collect()
        queries = every_key.with_columns(pl.lit(date(2024, 3, 12)).alias(AS_OF_DAY))
        oracle = sqlite_oracle(history, queries, spec)[level.name]
        expected = {key: stat for key, stat in zip(every_key.iter_rows(), oracle, strict=True) if stat[0] > 0}
        assert set(table.select(level.keys).iter_rows()) == set(expected), level.name
        for row in table.iter_rows(named=True):
            n, total = expected[tuple(row[k] for k in level.keys)]
            assert row["trips"] == n
            assert row["log_speed_sum"] == pytest.approx(total, abs=1e-9)
    assert frozen.tables["od_cell"].height > 1


def test_window_edges_follow_the_day_rule() -> None:
    spec = FeatureSpec(lookback_days=4)
    hub, other = HUBS[0], HUBS[2]
    ends = [datetime(2024, 1, 1, 23, 0), datetime(2024, 1, 5, 0, 0), datetime(2024, 1, 5, 23, 59)]
    round_trip = {"origin": hub, "dest": hub, "start": datetime(2024, 1, 3, tzinfo=UTC), "duration_s": 600}
    history = trips_frame(
        [
            {
                "origin": hub,
                "dest": other,
                "start": e.replace(tzinfo=UTC) - timedelta(hours=1),
                "duration_s": 3600,
            }
            for e in ends
        ]
        + [round_trip]  # no straight-line speed: never counted
    )
    table = AggregateTable.from_trips(history, spec)
    # snapshot day 5 Jan: trips that ended in [1 Jan 00:00, 5 Jan 00:00) -> only the first
    assert table.freeze(date(2024, 1, 5)).tables["global"]["trips"].to_list() == [1]
    # snapshot day 6 Jan: [2 Jan, 6 Jan) -> the two ending on 5 Jan (00:00 sharp counts for day 5)
    assert table.freeze(date(2024, 1, 6)).tables["global"]["trips"].to_list() == [2]
    # a datetime cut-off is floored to its UTC day
    assert table.freeze(datetime(2024, 1, 6, 12, tzinfo=UTC)).as_of == date(2024, 1, 6)
    assert table.freeze(date(2024, 1, 11)).tables["global"].height == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        table.freeze(datetime(2024, 1, 6))


def _wild(start: datetime, end: datetime, origin: tuple, dest: tuple) -> dict:
    """A trip covering its straight line at an absurd speed."""
    return {
        "origin": origin,
        "dest": dest,
        "start": start,
        "duration_s": (end - start).total_seconds(),
        "courier_id": "c1",
    }


def test_trips_ending_after_a_rows_start_do_not_change_its_features() -> None:
    spec = FeatureSpec(lookback_days=7)
    history = random_trips(300, seed=5, first_day=date(2024, 3, 1), days=10)
    row_start = datetime(2024, 3, 8, 11, 0, tzinfo=UTC)
    rows = trips_frame(
        [{"origin": HUBS[0], "dest": HUBS[2], "start": row_start, "duration_s": 900, "courier_id": "c1"}]
    )
    base = build_features(rows, AggregateTable.from_trips(history, spec), spec)

    def with_extra(extra: dict) -> pl.DataFrame:
        grown = pl.concat([history, trips_frame([extra]).with_columns(pl.lit("x").alias("trip_id"))])
        return build_features(rows, AggregateTable.from_trips(grown, spec), spec)

    leaky = [
        _wild(row_start - timedelta(minutes=30), row_start + timedelta(minutes=1), HUBS[0], HUBS[2]),
        _wild(row_start + timedelta(hours=1), row_start + timedelta(hours=1, seconds=5), HUBS[0], HUBS[2]),
        _wild(row_start + timedelta(days=2), row_start + timedelta(days=2, seconds=5), HUBS[0], HUBS[2]),
        # ended before the row started, but on the same UTC day: excluded by the day rule
        _wild(row_start - timedelta(hours=3), row_start - timedelta(hours=2), HUBS[0], HUBS[2]),
    ]
    for extra in leaky:
        assert_frame_equal(with_extra(extra), base)
    # control: the same wild trip ending the day before does move the row's speeds
    seen = with_extra(
        _wild(row_start - timedelta(days=1, hours=1), row_start - timedelta(days=1), HUBS[0], HUBS[2])
    )
    assert seen["od_log_speed"][0] > base["od_log_speed"][0]
    assert seen["od_trips"][0] == base["od_trips"][0] + 1


def test_sparse_cell_is_pulled_to_its_parent_and_a_busy_cell_keeps_its_mean() -> None:
    spec = FeatureSpec(shrinkage_trips=20.0)
    parent = h3.latlng_to_cell(*HUBS[0], spec.aggregate_parent_resolution)
    sparse, busy = sorted(h3.cell_to_children(parent, spec.aggregate_cell_resolution))[:2]
    dest = HUBS[2]
    day = datetime(2024, 5, 2, 9, 0, tzinfo=UTC)  # 12:00 in Nairobi: every trip is in the midday band

    def trip(cell: str, kmh: float) -> dict:
        origin = h3.cell_to_latlng(cell)
        km = _haversine_km(origin, dest)
        return {"origin": origin, "dest": dest, "start": day, "duration_s": km / kmh * 3600}

    history = trips_frame([trip(sparse, 10.0)] + [trip(busy, 20.0)] * 50)
    legs = (
        trips_frame([trip(sparse, 1.0), trip(busy, 1.0)])
        .with_columns(pl.col("start_ts") + timedelta(days=1))
        .drop("duration_s")
    )
    out = build_features(legs, AggregateTable.from_trips(history, spec), spec)
    # one band, one parent: band, global and parent means all equal the overall mean
    mean = (math.log(10) + 50 * math.log(20)) / 51
    expected_sparse = (math.log(10) + 20 * mean) / (1 + 20)
    expected_busy = (50 * math.log(20) + 20 * mean) / (50 + 20)
    assert out["origin_trips"].to_list() == [1, 50]
    assert out["origin_log_speed"].to_list() == pytest.approx([expected_sparse, expected_busy], rel=1e-9)
    assert abs(expected_sparse - mean) < 0.05 * abs(math.log(10) - mean)
    assert abs(expected_busy - math.log(20)) < 0.004


def shrunk_log_speed(chain, k: float) -> pl.Expr:
    """Oracle: the chain's finest level shrunk towards its parents as one nested expression, written
    straight from the recursion in features/levels.py's docstring."""
    root = chain[-1]
    value = pl.when(pl.col(root.trips) > 0).then(pl.col(root.log_speed_sum) / pl.col(root.trips))
    for level in reversed(chain[:-1]):
        value = (pl.col(level.log_speed_sum) + k * value) / (pl.col(level.trips) + k)
    return value


def test_shrinkage_stages_equal_the_nested_chain_expressions() -> None:
    """Each level's staged column (reading its parent's column) equals the whole chain as one expression."""
    import numpy as np

    from features.levels import chains, distinct_levels, shrinkage_stages, shrunk_column
    from features.plans import apply_stages

    spec = FeatureSpec()
    rng = np.random.default_rng(4)
    n = 200
    columns = {}
    for level in distinct_levels(spec):
        trips = rng.integers(0, 40, n) * (rng.random(n) > 0.3)  # a third of the rows: no trips at all
        columns[level.trips] = trips
        columns[level.log_speed_sum] = trips * rng.normal(3.0, 0.3, n)
    stats = pl.DataFrame(columns)
    staged = apply_stages(stats.lazy(), shrinkage_stages(spec)).collect()
    for chain in chains(spec).values():
        for start in range(len(chain)):
            nested = stats.select(shrunk_log_speed(chain[start:], spec.shrinkage_trips)).to_series()
            assert staged[shrunk_column(chain[start])].to_list() == nested.to_list()
    assert staged["global_shrunk_log_speed"].null_count() > 0  # rows with no trips anywhere stay null
