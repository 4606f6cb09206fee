"""Exact-match lookups of frozen per-key statistics by binary search (the serving path's "join").

A frozen level table is small (thousands of keys) and fixed for the life of a model; a live batch is a few
to a few thousand legs. A hash join re-hashes the table on every batch, which is most of its cost at these
sizes. `SortedIndex` sorts the table once and then finds each leg's row by binary search:

1. each key column's distinct values are kept sorted; a leg's value becomes its position there (a miss,
   or a null, marks the leg as unmatched);
2. the positions of a row's key columns form one mixed-radix integer code, and the table's codes are
   sorted once, so one more binary search finds the row.

Same result as a left join on the key columns with a null key never matching (tests compare the two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

MAX_CODE = 2**62  # the product of the key columns' distinct counts must stay below this (int64 codes)


def search_sorted(sorted_values: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per value: a position in `sorted_values` (ascending, not empty) and whether the value is there."""
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return at, sorted_values[at] == values


def _values(column: pl.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """The column as numpy values (nulls replaced by a placeholder) and its null mask (None: no nulls).

    numpy, not polars, on purpose: polars Series methods run as one-expression queries (~0.1 ms each)."""
    if column.dtype == pl.String:
        values = column.to_numpy()  # object array, None for null
        nulls = np.equal(values, None) if column.null_count() else None
        if nulls is not None:
            values[nulls] = ""
        return values, nulls
    if column.null_count():  # a numeric key with nulls: rare (cells of legs without coordinates)
        return column.fill_null(0).to_numpy(), column.is_null().to_numpy()
    return column.to_numpy(), None


@dataclass(frozen=True)
class SortedIndex:
    """A frozen table's key columns, sorted for binary search; `find` gives each query row's table row."""

    keys: tuple[str, ...]
    distinct: tuple[np.ndarray, ...]  # per key column: sorted distinct values
    codes: np.ndarray  # per table row (in `order`): the mixed-radix code of its key positions, ascending
    order: np.ndarray  # table row of each code

    @classmethod
    def build(cls, table: pl.DataFrame, keys: tuple[str, ...]) -> SortedIndex | None:
        """The index of `table` on `keys` (unique per row), or None when the codes would not fit int64."""
        distinct, positions = [], []
        for key in keys:
            values, nulls = _values(table.get_column(key))
            if nulls is not None:
                raise ValueError(f"frozen statistics have a null {key!r} key")
            unique = np.unique(values)
            distinct.append(unique)
            positions.append(np.searchsorted(unique, values))
        if np.prod([float(len(u)) for u in distinct]) >= MAX_CODE:
            return None
        codes = _combine(positions, distinct, len(table))
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
        if len(codes) > 1 and (np.diff(codes) == 0).any():
            raise ValueError(f"frozen statistics are not unique per key {keys}")
        return cls(tuple(keys), tuple(distinct), codes, order)

    def find(self, frame: pl.DataFrame) -> np.ndarray:
        """Per row of `frame`: the matching table row, or -1 (no such key, or a null key column)."""
        n = frame.height
        if not len(self.codes):
            return np.full(n, -1, dtype=np.int64)
        matched = np.ones(n, dtype=bool)
        positions = []
        for key, unique in zip(self.keys, self.distinct, strict=True):
            values, nulls = _values(frame.get_column(key))
            at, found = search_sorted(unique, values)
            matched &= found
            if nulls is not None:
                matched &= ~nulls
            positions.append(at)
        codes = _combine(positions, self.distinct, n)
        at, found = search_sorted(self.codes, codes)
        matched &= found
        return np.where(matched, self.order[at], -1)


def _combine(
    positions: list[np.ndarray], distinct: tuple[np.ndarray, ...] | list[np.ndarray], n: int
) -> np.ndarray:
    """One int64 per row: the key positions as digits of a mixed-radix number (radix: distinct counts)."""
    code = np.zeros(n, dtype=np.int64)
    for at, unique in zip(positions, distinct, strict=True):
        code = code * len(unique) + at
    return code


def gather(column: pl.Series, rows: np.ndarray, missing: int | float, name: str) -> pl.Series:
    """`column[rows]`, with `missing` where a row is -1; the column's dtype is kept."""
    values = column.to_numpy()
    picked = (
        np.where(rows >= 0, values[np.maximum(rows, 0)], missing)
        if len(values)
        else np.full(len(rows), missing)
    )
    series = pl.Series(name, picked)  # a dtype argument would cost a cast on every call (~5 us)
    return series if series.dtype == column.dtype else series.cast(column.dtype)
