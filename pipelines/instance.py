"""The Dagster instance under ETA_HOME: DAGSTER_HOME = $ETA_HOME/dagster, configured by the root dagster.yaml.

Dagster wants DAGSTER_HOME to be a folder holding dagster.yaml; the repository's copy of that file is the
one to edit, and `prepare_dagster_home` copies it into the state folder (refreshing a stale copy).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from data_contracts.home import PROJECT_ROOT, eta_home

INSTANCE_CONFIG = PROJECT_ROOT / "dagster.yaml"


def dagster_home(home: Path | None = None) -> Path:
    return (home or eta_home()) / "dagster"


def prepare_dagster_home(home: Path | None = None) -> Path:
    """Create $ETA_HOME/dagster with the project's dagster.yaml in it; returns the folder."""
    folder = dagster_home(home)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "dagster.yaml"
    if not target.exists() or target.read_bytes() != INSTANCE_CONFIG.read_bytes():
        shutil.copyfile(INSTANCE_CONFIG, target)
    return folder


@contextmanager
def dagster_instance(home: Path | None = None) -> Iterator[object]:
    """The instance of $ETA_HOME/dagster (or `home`/dagster), with DAGSTER_HOME set while it is open."""
    from dagster import DagsterInstance

    folder = prepare_dagster_home(home)
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(folder)
    instance = DagsterInstance.get()
    try:
        yield instance
    finally:
        instance.dispose()
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
