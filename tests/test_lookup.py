"""`features.lookup.SortedIndex` against its oracle, a polars left join on the same keys."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_series_equal

import features.lookup
from features.lookup import SortedIndex, gather


def _table(rng: np.random.Generator, n: int) -> pl.DataFrame:
    cells = rng.choice(np.array([617700169958293503, 617700169958555647, 2**62 + 12345, 5]), n)
    frame = pl.DataFrame(
        {
            "cell": cells,
            "band": rng.integers(0, 5, n).astype(np.int8),
            "courier": rng.choice(["a", "b", "courier-07", "é"], n),
        }
    ).unique(maintain_order=True)
    return frame.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("trips") + 1,
        (pl.int_range(pl.len()) * 0.5).alias("sum"),
    )


KEYS = ("cell", "band", "courier")


def _oracle(table: pl.DataFrame, queries: pl.DataFrame, keys: list[str]) -> tuple[pl.Series, pl.Series]:
    joined = queries.select(keys).join(table, on=keys, how="left", maintain_order="left")
    return joined["trips"].fill_null(0), joined["sum"].fill_null(0.0)


@pytest.mark.parametrize("keys", [["cell", "band"], ["courier"], ["cell", "band", "courier"], ["band"]])
def test_finds_the_same_rows_as_a_left_join(keys: list[str]) -> None:
    rng = np.random.default_rng(3)
    table = _table(rng, 60).unique(subset=keys, keep="first", maintain_order=True)
    queries = pl.concat(
        [
            table.select(keys).sample(40, with_replacement=True, seed=1),  # known keys
            _table(rng, 30).select(keys),  # some combinations the table lacks
            # nulls never match; neither do values the table has never seen
            pl.DataFrame(
                {"cell": [None, 99, 5], "band": [1, None, 9], "courier": [None, "nobody", "a"]}
            ).select(keys),
        ],
        how="vertical_relaxed",
    ).cast({"band": pl.Int8} if "band" in keys else {})
    index = SortedIndex.build(table, tuple(keys))
    rows = index.find(queries)
    trips, sums = _oracle(table, queries, keys)
    assert_series_equal(gather(table["trips"], rows, 0, "trips"), trips)
    assert_series_equal(gather(table["sum"], rows, 0.0, "sum"), sums)
    # both outcomes were exercised
    assert (rows >= 0).sum() >= 40
    assert (rows == -1).sum() >= 2


def test_an_empty_table_matches_nothing_and_an_empty_batch_gives_nothing() -> None:
    table = _table(np.random.default_rng(0), 10)
    empty = SortedIndex.build(table.head(0), KEYS)
    assert empty.find(table).tolist() == [-1] * table.height
    assert gather(table.head(0)["trips"], empty.find(table), 0, "trips").to_list() == [0] * table.height
    index = SortedIndex.build(table, KEYS)
    assert index.find(table.head(0)).tolist() == []


def test_refuses_duplicate_or_null_keys_and_declines_codes_that_overflow(monkeypatch) -> None:
    table = _table(np.random.default_rng(0), 20)
    with pytest.raises(ValueError, match="not unique"):
        SortedIndex.build(pl.concat([table, table.head(1)]), ("cell", "band", "courier"))
    with pytest.raises(ValueError, match="null 'courier'"):
        SortedIndex.build(table.with_columns(pl.lit(None, pl.String).alias("courier")), ("courier",))
    monkeypatch.setattr(features.lookup, "MAX_CODE", 4)  # more combinations than codes
    assert SortedIndex.build(table, ("cell", "band")) is None


def test_a_level_too_large_to_code_falls_back_to_its_join(monkeypatch) -> None:
    """FrozenAggregates joins a level whose keys cannot be coded in int64: same features either way."""
    from datetime import UTC, date, datetime, timedelta

    from data_contracts.synthetic import simulate_trips
    from features.aggregates import AggregateTable
    from features.build import build_features
    from features.spec import FeatureSpec

    spec = FeatureSpec()
    trips = simulate_trips(3000, seed=2, start=date(2026, 1, 5), days=10)
    table = AggregateTable.from_trips(trips, spec)
    legs = (
        trips.drop("duration_s")
        .tail(50)
        .with_columns(
            start_ts=pl.lit(datetime(2026, 1, 15, 9, tzinfo=UTC))
            + pl.int_range(pl.len()) * timedelta(minutes=7)
        )
    )
    searched = build_features(legs, table.freeze(date(2026, 1, 15)), spec)
    monkeypatch.setattr(features.lookup, "MAX_CODE", 2)
    joined = build_features(legs, table.freeze(date(2026, 1, 15)), spec)
    assert searched.equals(joined)
    assert searched["od_trips"].max() > 0
