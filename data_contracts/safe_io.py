"""Two small robustness helpers shared by the contract, the models, the pipelines and the CLI: writing a file
so that no reader ever sees half of it, and an error reduced to the one line a user should read."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` beside `path`, then rename onto it: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def first_line(err: BaseException, limit: int | None = None) -> str:
    """The first line of an error's message (its type's name when it has none), e.g. without the advice
    polars appends about flags the user cannot set."""
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:limit]
