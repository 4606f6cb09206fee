"""Feature expressions built once per (spec, zones) and reused: a query plan's stages.

On a small batch, building the ~70 polars expressions of the feature definition in Python is a large share
of the build (docs/decisions/polars-executor.md). Expressions are immutable, so the stages that depend
only on the spec and the batch's time zones are kept here and the same objects are handed to every batch.
The key holds the spec object itself (a spec is frozen), so an entry can never be served for a different
spec that happens to reuse a freed object's id.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import polars as pl

Stages = tuple[tuple[pl.Expr, ...], ...]  # each stage: one `with_columns`, reading columns of earlier stages

MAX_ENTRIES = 64
_entries: OrderedDict[tuple, tuple[object, Stages]] = OrderedDict()
_lock = threading.Lock()


def cached_stages(
    name: str, spec: object, extra: Hashable, build: Callable[[], Sequence[Sequence[pl.Expr]]]
) -> Stages:
    """The stages `build()` returns for (name, spec, extra), built on first use and then reused."""
    key = (name, id(spec), extra)
    with _lock:
        hit = _entries.get(key)
        if hit is not None and hit[0] is spec:
            _entries.move_to_end(key)
            return hit[1]
    stages = tuple(tuple(stage) for stage in build())
    with _lock:
        _entries[key] = (spec, stages)
        _entries.move_to_end(key)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return stages


def apply_stages(frame: pl.LazyFrame, stages: Sequence[Sequence[pl.Expr]]) -> pl.LazyFrame:
    """One `with_columns` per stage, in order."""
    for stage in stages:
        frame = frame.with_columns(stage)
    return frame
