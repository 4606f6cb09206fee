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


# A small simulated city and one model trained on it, shared by the model, registry and CLI tests.
@pytest.fixture(scope="session")
def city_trips():
    from data_contracts.synthetic import simulate_trips

    return simulate_trips(36_000, seed=11, days=24)


@pytest.fixture(scope="session")
def fast_params():
    from models.quantile import BoostingParams

    return BoostingParams(num_leaves=31, median_rounds=300, spread_rounds=120, learning_rate=0.1)


@pytest.fixture(scope="session")
def trained(city_trips, fast_params):
    from models.train import TrainConfig, train_eta_model

    return train_eta_model(city_trips, TrainConfig(params=fast_params))


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on a free loopback port for the session (tests/pg_server.py); skipped with
    the reason where no server binaries are installed (`make install` installs them)."""
    from tests.pg_server import NoServer, as_server_user, postgres_server, server_bindir

    try:
        server_bindir(), as_server_user()
    except NoServer as reason:
        pytest.skip(str(reason))
    with postgres_server() as server:
        yield server
