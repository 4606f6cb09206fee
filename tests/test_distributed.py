"""Training on a Dask cluster: aggregates combined from day parts, early stopping shared by the workers, and
a real `LocalCluster` (two worker processes) that trains the same model as the in-process engine."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.aggregates import CUM_SUM, CUM_TRIPS, AggregateTable, daily_totals
from features.spec import FeatureSpec
from models.distributed import DaskEngine, StopOnValidation, dask_engine, engine_name, scheduler_address


def test_daily_totals_of_day_parts_add_up_to_the_table_of_the_whole(city_trips: pl.DataFrame) -> None:
    spec = FeatureSpec()
    day = pl.col("start_ts").dt.date()
    parts = city_trips.with_columns(day.alias("_day")).partition_by("_day", include_key=False)
    assert len(parts) > 20
    combined = AggregateTable.from_daily([daily_totals(part, spec) for part in parts], spec)
    whole = AggregateTable.from_trips(city_trips, spec)
    assert combined.cumulative.keys() == whole.cumulative.keys()
    for level, table in whole.cumulative.items():
        keys = [c for c in table.columns if c not in (CUM_TRIPS, CUM_SUM)]
        got = combined.cumulative[level].sort(keys)
        want = table.sort(keys)
        assert got.select(keys).equals(want.select(keys)), level
        assert got[CUM_TRIPS].to_list() == want[CUM_TRIPS].to_list(), level
        np.testing.assert_allclose(got[CUM_SUM].to_numpy(), want[CUM_SUM].to_numpy(), rtol=1e-9)


def test_stop_on_validation_stops_where_lightgbm_early_stopping_does() -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    X = rng.normal(size=(6_000, 5))
    y = X[:, 0] + 0.5 * np.abs(X[:, 1]) * rng.normal(size=6_000)
    X_fit, y_fit, X_val, y_val = X[:4_000], y[:4_000], X[4_000:], y[4_000:]
    params = {"objective": "quantile", "alpha": 0.9, "learning_rate": 0.3, "num_leaves": 15, "verbosity": -1}
    params |= {"deterministic": True, "num_threads": 1, "seed": 1}
    train = lgb.Dataset(X_fit, y_fit, free_raw_data=False)
    valid = lgb.Dataset(X_val, y_val, reference=train)
    lightgbm_own = lgb.train(
        params, train, 400, valid_sets=[valid], callbacks=[lgb.early_stopping(5, verbose=False)]
    )
    ours = lgb.train(params, train, 400, callbacks=[StopOnValidation(X_val, y_val, None, 0.9, 5)])
    assert 1 < lightgbm_own.best_iteration < 400  # it did stop early
    assert ours.best_iteration == lightgbm_own.best_iteration
    np.testing.assert_allclose(ours.predict(X_val), lightgbm_own.predict(X_val))
    # without running out of patience, both keep the best round when the rounds end
    lightgbm_own = lgb.train(
        params, train, 60, valid_sets=[valid], callbacks=[lgb.early_stopping(100, verbose=False)]
    )
    ours = lgb.train(params, train, 60, callbacks=[StopOnValidation(X_val, y_val, None, 0.9, 100)])
    assert lightgbm_own.best_iteration < 60
    assert ours.best_iteration == lightgbm_own.best_iteration
    np.testing.assert_allclose(ours.predict(X_val), lightgbm_own.predict(X_val))


def test_scheduler_address_prefers_the_option_over_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ETA_DASK_SCHEDULER", "tcp://from-env:8786")
    assert scheduler_address("tcp://given:8786") == "tcp://given:8786"
    assert scheduler_address(None) == "tcp://from-env:8786"
    monkeypatch.delenv("ETA_DASK_SCHEDULER")
    assert scheduler_address(None) is None
    with dask_engine(None) as engine:
        assert engine is None
    assert engine_name(None) == "in-process"


@pytest.fixture
def quick_timeout(monkeypatch) -> None:
    monkeypatch.setattr("models.distributed.CONNECT_TIMEOUT_S", 2)


def test_an_unreachable_scheduler_is_named_in_the_error(quick_timeout) -> None:
    unreachable = pytest.raises(
        ConnectionError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"
    )
    with unreachable, dask_engine("tcp://127.0.0.1:9"):
        pass


def test_eta_train_names_an_unreachable_scheduler_and_stops(
    tmp_path, city_trips, monkeypatch, quick_timeout
) -> None:
    from typer.testing import CliRunner

    from eta_cli.main import app

    monkeypatch.setenv("ETA_HOME", str(tmp_path / "home"))
    data = tmp_path / "valid.parquet"
    city_trips.head(2_000).write_parquet(data)
    refused = CliRunner().invoke(app, ["train", "--data", str(data), "--dask-scheduler", "tcp://127.0.0.1:9"])
    assert refused.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in refused.output
    assert not (tmp_path / "home" / "mlflow").exists()  # nothing half-logged


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of one thread each: this machine's two cores."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as local,
        Client(local) as client,
    ):
        yield client


@pytest.mark.slow
def test_dask_training_gives_the_in_process_model_within_tolerance(
    cluster, city_trips, fast_params, trained
) -> None:
    from models.train import TrainConfig, train_eta_model

    result = train_eta_model(city_trips, TrainConfig(params=fast_params, refit=False), DaskEngine(cluster))
    assert engine_name(DaskEngine(cluster)).startswith("dask tcp://127.0.0.1:")
    # the same artifact as the in-process evaluated model: native boosters per quantile, the same frozen
    # aggregates (computed from per-day parts on the workers), conformal offsets
    dask_model, local_model = result.model, trained.evaluated
    assert sorted(dask_model.regressor.boosters) == sorted(local_model.regressor.boosters)
    for level, table in local_model.aggregates.tables.items():
        keys = [c for c in table.columns if c != "log_speed_sum"]
        got, want = dask_model.aggregates.tables[level].sort(keys), table.sort(keys)
        assert got.select(keys).equals(want.select(keys)), level
        np.testing.assert_allclose(
            got["log_speed_sum"].to_numpy(), want["log_speed_sum"].to_numpy(), rtol=1e-9
        )
    dask, local = result.metrics, trained.metrics
    assert dask["n"] == local["n"]
    # docs/decisions/dask-training.md: the workers find feature bins on their own days and LightGBM averages
    # their leaf quantiles, so the trees differ; bounds = the worst of 11 runs on these legs, with a margin
    assert dask["pinball_mean"] == pytest.approx(local["pinball_mean"], rel=0.04)
    assert dask["width_80_s"] == pytest.approx(local["width_80_s"], rel=0.10)
    assert dask["coverage_80"] == pytest.approx(local["coverage_80"], abs=0.02)
    assert dask["coverage_90"] == pytest.approx(local["coverage_90"], abs=0.02)


def test_the_dagster_resource_trains_on_the_scheduler_it_names(cluster, monkeypatch) -> None:
    from pipelines.resources import DaskCluster

    address = cluster.scheduler.address
    with DaskCluster(scheduler=address).engine() as engine:
        assert engine_name(engine) == f"dask {address}"
    monkeypatch.setenv("ETA_DASK_SCHEDULER", address)
    with DaskCluster().engine() as engine:
        assert engine_name(engine) == f"dask {address}"
    monkeypatch.delenv("ETA_DASK_SCHEDULER")
    with DaskCluster().engine() as engine:
        assert engine is None
