"""Dagster and MLflow on a real PostgreSQL server (the session's `postgres` fixture): runs and
materializations read back from a fresh instance and from the tables themselves; a model trained,
registered, promoted by the gate and served by `eta serve` from a Postgres-backed registry whose
artifacts are on a shared path."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx
import numpy as np
import pytest
import yaml

from data_contracts.home import PROJECT_ROOT
from pipelines.instance import INSTANCE_CONFIG, PG_URL_ENV, instance_config

CITY_START = date(2026, 1, 5)  # the serving payloads' legs depart the day after this city's 14 days


def day(index: int) -> str:
    return (CITY_START + timedelta(days=index)).isoformat()


def query(url: str, sql: str, *args: object) -> list[tuple]:
    """Rows of one SQL query on the database of a SQLAlchemy URL, through psycopg2 itself."""
    import psycopg2

    connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://", 1))
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()
    finally:
        connection.close()


# ---- without a server ----


def test_the_postgres_instance_config_differs_in_its_storage_only() -> None:
    sqlite = yaml.safe_load(instance_config(postgres=False))
    postgres = yaml.safe_load(instance_config(postgres=True))
    assert instance_config(postgres=False) == INSTANCE_CONFIG.read_text()  # the file as it is, comments too
    assert sqlite["storage"] == {"sqlite": {"base_dir": {"env": "DAGSTER_HOME"}}}
    assert postgres["storage"] == {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    assert {k: v for k, v in postgres.items() if k != "storage"} == {
        k: v for k, v in sqlite.items() if k != "storage"
    }


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql+psycopg2://eta:s3cr@t@db:5432/mlflow", "postgresql+psycopg2://eta:***@db:5432/mlflow"),
        (
            "postgresql+psycopg2://eta:pw@db/m?sslmode=require",
            "postgresql+psycopg2://eta:***@db/m?sslmode=require",
        ),
        ("postgresql+psycopg2://eta@db/mlflow", "postgresql+psycopg2://eta@db/mlflow"),  # password: ~/.pgpass
        ("sqlite:////srv/eta/mlflow.db?timeout=60", "sqlite:////srv/eta/mlflow.db?timeout=60"),
    ],
)
def test_a_tracking_uri_is_shown_without_its_password(uri: str, shown: str) -> None:
    from models.tracking import display_uri

    assert display_uri(uri) == shown


@pytest.mark.parametrize("variable", ["MLFLOW_TRACKING_URI", PG_URL_ENV])
@pytest.mark.parametrize("url", ["postgresql://eta:s3cret@db/eta", "postgres://eta@db/eta"])
def test_a_postgres_url_without_its_driver_is_refused_by_name(monkeypatch, tmp_path, variable, url) -> None:
    """SQLAlchemy 2.1 would read it as psycopg 3 and fail deep inside with 'No module named psycopg'."""
    from models.tracking import tracking_uri
    from pipelines.instance import prepare_dagster_home

    monkeypatch.setenv(variable, url)
    with pytest.raises(
        ValueError, match=rf"^{variable} starts with postgres(ql)?://; write postgresql\+psycopg2://"
    ) as err:
        tracking_uri() if variable == "MLFLOW_TRACKING_URI" else prepare_dagster_home(tmp_path)
    assert "s3cret" not in str(err.value)


# ---- on the server ----


@pytest.fixture(scope="module")
def backends(postgres, tmp_path_factory):
    """A fresh ETA_HOME whose Dagster instance and MLflow store are databases on the server, with MLflow's
    artifacts in a folder outside ETA_HOME (standing in for a shared mount)."""
    root = tmp_path_factory.mktemp("postgres_backends")
    urls = {"dagster": postgres.create_database("dagster"), "mlflow": postgres.create_database("mlflow")}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ETA_HOME", str(root / "eta_home"))
        env.setenv(PG_URL_ENV, urls["dagster"])
        env.setenv("MLFLOW_TRACKING_URI", urls["mlflow"])
        env.setenv("ETA_MLFLOW_ARTIFACTS", str(root / "shared" / "mlflow-artifacts"))
        env.setenv("BENTOML_HOME", str(root / "bentoml"))
        env.delenv("DAGSTER_HOME", raising=False)
        yield {
            **urls,
            "root": root,
            "home": root / "eta_home",
            "artifacts": root / "shared" / "mlflow-artifacts",
        }


def test_dagster_runs_and_materializations_are_stored_in_postgres(backends) -> None:
    import dagster as dg
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from pipelines.automation import INGEST_KEYS
    from pipelines.definitions import build_definitions
    from pipelines.instance import dagster_instance
    from pipelines.resources import (
        BentoPackager,
        DriftDetector,
        ModelRegistry,
        OnlineStore,
        SyntheticCitySource,
        Warehouse,
    )

    root = backends["root"] / "pipeline"
    resources = {
        "source": SyntheticCitySource(raw_dir=str(root / "raw"), trips_per_day=300),
        "warehouse": Warehouse(root=str(root / "warehouse")),
        "registry": ModelRegistry(),
        "drift": DriftDetector(reference_sample=400, current_sample=400),
        "packager": BentoPackager(),
        "online": OnlineStore(root=str(root / "online")),
    }
    defs = build_definitions(start=day(0), window_days=5, **resources)
    resources = dict(defs.resources)  # with the defaults of any the graph adds (this test names its own)
    with dagster_instance() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        results = [
            dg.materialize(
                [*defs.assets, *defs.asset_checks],
                selection=list(INGEST_KEYS),
                partition_key=day(i),
                resources=resources,
                instance=instance,
            )
            for i in (0, 1)
        ]
    assert all(result.success for result in results)
    counts = [
        {
            e.materialization.asset_key.to_user_string(): e.materialization.metadata[
                "dagster/row_count"
            ].value
            for e in result.get_asset_materialization_events()
        }
        for result in results
    ]
    folder = backends["home"] / "dagster"
    assert not list(folder.rglob("*.db"))  # no sqlite store was made beside the config

    with dagster_instance() as fresh:  # a new instance object reads what the first one wrote
        for result in results:
            assert fresh.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
        key = dg.AssetKey("validated_trips")
        assert fresh.get_materialized_partitions(key) == {day(0), day(1)}
        latest = fresh.get_latest_materialization_event(key).asset_materialization
        assert latest.partition == day(1)
        assert latest.metadata["dagster/row_count"].value == counts[1]["validated_trips"]

    url = backends["dagster"]
    rows = query(url, "SELECT run_id, status FROM runs ORDER BY create_timestamp")
    assert rows == [(r.run_id, "SUCCESS") for r in results]
    stored = query(
        url,
        "SELECT partition, count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "AND asset_key = %s GROUP BY partition ORDER BY partition",
        key.to_string(),
    )
    assert stored == [(day(0), 1), (day(1), 1)]


@pytest.fixture(scope="module")
def registered(backends):
    """A small model trained on a 14-day city and logged, registered and judged by the project's gate."""
    from data_contracts.synthetic import simulate_trips
    from models.quantile import BoostingParams
    from models.registry import log_and_register
    from models.train import TrainConfig, train_eta_model

    trips = simulate_trips(12_000, seed=23, start=CITY_START, days=14)
    params = BoostingParams(num_leaves=31, median_rounds=120, spread_rounds=50, num_threads=1, seed=23)
    config = TrainConfig(params=params, seed=23)
    result = train_eta_model(trips, config)
    return result, log_and_register(result, config, run_name="postgres-backed")


@pytest.mark.slow
def test_a_model_is_registered_promoted_and_served_from_a_postgres_registry(backends, registered) -> None:
    import mlflow

    from models.tracking import CHALLENGER, CHAMPION, alias_version, configure, tracking_uri
    from tests.serving.payloads import ETA_BODY, legs_frame_for
    from tests.serving.servers import eta_serve, server_env

    result, run = registered
    assert tracking_uri() == backends["mlflow"]
    assert (run.version, run.decision.promote) == (1, True)
    assert (alias_version(CHAMPION), alias_version(CHALLENGER)) == (1, 1)
    url = backends["mlflow"]
    aliases = query(url, "SELECT alias, version FROM registered_model_aliases WHERE name = 'eta-model'")
    assert sorted(aliases) == [("challenger", 1), ("champion", 1)]
    assert query(url, "SELECT name, artifact_location FROM experiments WHERE name = 'eta'") == [
        ("eta", (backends["artifacts"] / "eta").as_uri())
    ]

    # the run's files are on the shared path, and nothing went to a sqlite store under ETA_HOME
    configure()
    client = mlflow.MlflowClient()
    model_files = Path(url2pathname(urlsplit(client.get_model_version_download_uri("eta-model", "1")).path))
    assert model_files.is_relative_to(backends["artifacts"])
    assert (model_files / "MLmodel").is_file()
    plots = {a.path for a in client.list_artifacts(run.run_id, "plots")}
    assert "plots/reliability.png" in plots
    assert not (backends["home"] / "mlflow" / "mlflow.db").exists()

    # `eta serve` as deployed: its publisher downloads models:/eta-model@champion from the Postgres store
    log = backends["root"] / "eta-serve.log"
    with eta_serve(PROJECT_ROOT, server_env(), log) as server:
        response = httpx.post(f"{server.url}/eta", json=ETA_BODY, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["model"]["version"], answer["model"]["alias"]) == ("1", "champion")
    expected = result.model.predict_quantiles(legs_frame_for(ETA_BODY["legs"]))
    for leg, quantiles in zip(answer["legs"], expected, strict=True):
        np.testing.assert_allclose(leg["quantiles_s"], quantiles, atol=0.051)


def test_an_experiment_whose_shared_folder_is_not_mounted_is_refused(backends) -> None:
    """The store says where the experiment's files are; a machine without that folder must not write a
    local one of the same name."""
    from models.tracking import configure

    experiment = configure().experiment_id  # made now, or by the registration above
    folder = backends["artifacts"] / "eta"
    away = folder.with_name("eta.unmounted")
    folder.rename(away)
    try:
        with pytest.raises(RuntimeError, match=r"keeps its artifacts in .*mount the shared artifact folder"):
            configure()
    finally:
        away.rename(folder)
    assert configure().experiment_id == experiment  # mounted again: the same experiment
