"""Shared test set-up: every test session writes runtime state under a temporary ETA_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from data_contracts.home import shared_data_dir


@pytest.fixture(autouse=True, scope="session")
def _isolated_eta_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("eta_home")
    previous = os.environ.get("ETA_HOME")
    os.environ["ETA_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("ETA_HOME", None)
    else:
        os.environ["ETA_HOME"] = previous


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data sets; tests that need them skip with a reason when they are absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (it sits beside the checkout as ../shared/data)")
    return path
