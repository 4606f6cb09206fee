"""Serving tests: a small synthetic city, a champion registered in a private MLflow store, the service.

Everything here runs under its own ETA_HOME and BENTOML_HOME (restored when the package's tests end), so
other test modules registering models in the session store cannot move this package's champion alias.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest

CITY_SEED, CITY_START, CITY_DAYS, CITY_LEGS = 11, date(2026, 1, 5), 14, 20_000
ISOLATED_ENV = (
    "ETA_HOME",
    "BENTOML_HOME",
    "MLFLOW_TRACKING_URI",
    "ETA_MLFLOW_ARTIFACTS",
    "BENTOML_CONFIG_OVERRIDES",
)
# Several apps are built in this process (plain, locked down, hot swap); BentoML registers its Prometheus
# metrics per app, and a second registration in one process fails. Real servers keep their metrics.
LOOPBACK = ("127.0.0.1", 50000)  # in-process clients call from this host, as a sidecar or an operator would
NO_METRICS = json.dumps({"services": {"lastmile-eta": {"metrics": {"enabled": False}}}})


@dataclass(frozen=True)
class Registered:
    version: str
    model: object  # models.bundle.EtaModel, as loaded back from the registry


@pytest.fixture(scope="package", autouse=True)
def serving_home(_isolated_eta_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    saved = {k: v for k, v in os.environ.items() if k in ISOLATED_ENV or k.startswith("ETA_SERVE_")}
    root = tmp_path_factory.mktemp("serving")
    for key in saved:
        os.environ.pop(key)
    os.environ["ETA_HOME"] = str(root / "eta_home")
    os.environ["BENTOML_HOME"] = str(root / "bentoml")
    os.environ["ETA_SERVE_POLL_SECONDS"] = "0"  # tests swap models explicitly (or turn polling on)
    os.environ["BENTOML_CONFIG_OVERRIDES"] = NO_METRICS
    yield root
    for key in [*ISOLATED_ENV, *(k for k in os.environ if k.startswith("ETA_SERVE_"))]:
        os.environ.pop(key, None)
    os.environ.update(saved)


@pytest.fixture(scope="package")
def city_trips() -> pl.DataFrame:
    from data_contracts.synthetic import simulate_trips

    return simulate_trips(CITY_LEGS, seed=CITY_SEED, start=CITY_START, days=CITY_DAYS)


def _register(trips: pl.DataFrame, seed: int, rounds: tuple[int, int], promote: bool) -> Registered:
    from models.pyfunc import load_eta_model
    from models.quantile import BoostingParams
    from models.registry import Comparison, log_and_register
    from models.tracking import CHAMPION, configure, set_alias
    from models.train import TrainConfig, train_eta_model

    config = TrainConfig(
        params=BoostingParams(median_rounds=rounds[0], spread_rounds=rounds[1], num_threads=1, seed=seed),
        seed=seed,
    )
    result = train_eta_model(trips, config)
    # the gate is not under test here: compare against itself so no champion has to be loaded and scored
    same = Comparison("the test window", champion=result.metrics, challenger=result.metrics)
    run = log_and_register(result, config, run_name=f"serving-tests-{seed}", comparison=same)
    if promote:
        set_alias(CHAMPION, run.version)
    configure()
    model, _ = load_eta_model(f"models:/eta-model/{run.version}")
    return Registered(str(run.version), model)


@pytest.fixture(scope="package")
def champion(serving_home: Path, city_trips: pl.DataFrame) -> Registered:
    """Version 1: trained on the whole synthetic city, the champion."""
    return _register(city_trips, seed=CITY_SEED, rounds=(150, 60), promote=True)


@pytest.fixture(scope="package")
def challenger(champion: Registered, city_trips: pl.DataFrame) -> Registered:
    """Version 2: a different (smaller) model, registered but not promoted; tests move the alias to it."""
    from models.tracking import CHAMPION, set_alias

    registered = _register(city_trips.sample(8_000, seed=5), seed=5, rounds=(60, 30), promote=False)
    set_alias(CHAMPION, int(champion.version))
    return registered


@pytest.fixture
def champion_alias(champion: Registered) -> Iterator[None]:
    """Puts the champion alias back on version 1 after a test that moves it."""
    from models.tracking import CHAMPION, set_alias

    yield
    set_alias(CHAMPION, int(champion.version))


@pytest.fixture(scope="package")
def service(champion: Registered):
    """The BentoML service class, constructed in-process (model loaded from the registry, no HTTP)."""
    from serving.guard import drop_service
    from serving.service import EtaService

    instance = EtaService()
    instance.predictor.wait_for_model()
    yield instance
    drop_service(instance.predictor)  # the guard then answers for the test clients' services again
    asyncio.run(instance.predictor.stop())


@pytest.fixture(scope="package")
def client(champion: Registered):
    """The service's ASGI app behind a test client (lifespan run: micro-batcher on, polling off)."""
    from starlette.testclient import TestClient

    from serving.service import EtaService

    with TestClient(EtaService.to_asgi(), raise_server_exceptions=False, client=LOOPBACK) as test_client:
        wait_ready(test_client)
        yield test_client


def pytest_configure(config: pytest.Config) -> None:
    # starlette asks for `httpx2` for its TestClient; httpx is what this project pins
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


def wait_ready(test_client, timeout_s: float = 120.0, base: str = "") -> None:
    """Until the service in the test client serves a model (its publisher checks the registry first)."""
    import time

    deadline = time.monotonic() + timeout_s
    while test_client.get(f"{base}/readyz").status_code != 200:
        assert time.monotonic() < deadline, test_client.get(f"{base}/readyz").text
        time.sleep(0.2)
