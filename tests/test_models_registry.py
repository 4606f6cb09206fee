"""MLflow: the logged run, the registered pyfunc by alias, the gate's decisions and rollback (real sqlite store)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pytest

from models.gate import GateConfig
from models.registry import log_and_register, rollback
from models.tracking import CHALLENGER, CHAMPION, alias_version, configure, tracking_uri
from models.train import TrainConfig


@pytest.fixture(scope="module")
def fresh_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("registry_home")
    previous = os.environ["ETA_HOME"]
    os.environ["ETA_HOME"] = str(home)
    yield home
    os.environ["ETA_HOME"] = previous


@pytest.fixture(scope="module")
def first_run(fresh_home, trained, fast_params):
    return log_and_register(trained, TrainConfig(params=fast_params), run_name="first")


def test_store_lives_under_eta_home(fresh_home, first_run) -> None:
    assert tracking_uri().startswith(f"sqlite:///{fresh_home}/mlflow/mlflow.db")
    assert (fresh_home / "mlflow" / "artifacts" / "eta").is_dir()
    assert not (fresh_home.parent / "mlruns").exists()


def test_first_calibrated_model_becomes_champion(first_run) -> None:
    assert first_run.version == 1
    assert first_run.decision.promote
    assert alias_version(CHAMPION) == 1
    assert alias_version(CHALLENGER) == 1


def test_run_logs_params_metrics_plots_and_spec(first_run, trained) -> None:
    import mlflow

    configure()
    run = mlflow.get_run(first_run.run_id)
    assert run.data.params["data_hash"] == trained.data_hash
    assert run.data.params["window_split_by"] == "date"
    assert run.data.metrics["coverage_80"] == pytest.approx(trained.metrics["coverage_80"])
    assert run.data.metrics["baseline/cell_hour_mae_s"] == pytest.approx(
        trained.baseline_metrics["cell_hour"]["mae_s"]
    )
    client = mlflow.MlflowClient()
    plots = {a.path for a in client.list_artifacts(first_run.run_id, "plots")}
    assert plots == {
        "plots/reliability.png",
        "plots/coverage_by_segment.png",
        "plots/pit_histogram.png",
        "plots/width_vs_distance.png",
    }
    spec = json.loads(mlflow.artifacts.load_text(f"runs:/{first_run.run_id}/feature_spec.json"))
    assert spec["version"] == trained.model.spec.version


def test_champion_pyfunc_predicts_like_the_trained_model(first_run, trained) -> None:
    import mlflow

    configure()
    legs = trained.test_legs.head(50)
    pyfunc = mlflow.pyfunc.load_model("models:/eta-model@champion")
    as_pandas = legs.drop("duration_s").with_columns(legs["start_ts"].dt.replace_time_zone(None)).to_pandas()
    served = pyfunc.predict(as_pandas)
    assert list(served.columns) == ["q05", "q10", "q25", "q50", "q75", "q90", "q95"]
    np.testing.assert_allclose(served.to_numpy(), trained.model.predict_quantiles(legs), rtol=1e-9)


def test_logged_model_carries_native_boosters_not_pickles(first_run, tmp_path) -> None:
    import mlflow

    configure()
    local = mlflow.artifacts.download_artifacts(
        f"models:/eta-model/{first_run.version}", dst_path=str(tmp_path)
    )
    bundle = next(p for p in tmp_path.rglob("feature_spec.json") if p.parent.name == "eta_model").parent
    assert (bundle / "boosters" / "lightgbm_q50.txt").read_text().startswith("tree")
    assert (bundle / "aggregates").is_dir()
    assert (bundle / "conformal.json").is_file()
    assert local


def test_loading_a_registered_model_unpickles_nothing(first_run, tmp_path, monkeypatch) -> None:
    """No path that loads a registered model runs a pickle: the pyfunc is logged as code and the bundle is
    native files (eta predict, eta build-bento and the pipelines all load through load_eta_model)."""
    import pickle

    import cloudpickle
    import mlflow

    from models.grid import DEFAULT_QUANTILES
    from models.pyfunc import load_eta_model

    configure()
    uri = f"models:/eta-model/{first_run.version}"
    mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path))
    assert [p.name for p in tmp_path.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")] == []

    def refuse(*args, **kwargs):
        raise AssertionError("a model load unpickled something")

    for module in (pickle, cloudpickle):
        monkeypatch.setattr(module, "load", refuse)
        monkeypatch.setattr(module, "loads", refuse)
    model, _ = load_eta_model(uri)
    assert model.quantiles == list(DEFAULT_QUANTILES)


def test_second_identical_model_is_gated_on_pinball_and_decision_is_logged(
    first_run, trained, fast_params, fresh_home
) -> None:
    import mlflow
    import polars as pl

    quarantine = pl.DataFrame({"trip_id": ["t1", "t2"], "reason": ["missing_value", "implausible_speed"]})
    second = log_and_register(
        trained, TrainConfig(params=fast_params), run_name="second", quarantine=quarantine
    )
    run = mlflow.get_run(second.run_id)
    assert run.data.params["rows_quarantined"] == "2"
    logged = mlflow.artifacts.download_artifacts(
        run_id=second.run_id, artifact_path="data/quarantine.parquet"
    )
    assert pl.read_parquet(logged).equals(quarantine)
    assert second.version == 2
    assert second.champion_version == 1
    # the champion is the same refit model: it calibrated on every test day, so there is no fair comparison
    # window and the challenger is judged on calibration alone -> promoted
    assert second.decision.promote
    assert any("judged on calibration alone" in r for r in second.decision.reasons), second.decision.reasons
    assert second.decision.champion is None
    log = (fresh_home / "registry" / "gate_decisions.jsonl").read_text().splitlines()
    assert [json.loads(line)["version"] for line in log] == [1, 2]
    assert alias_version(CHAMPION) == 2


def test_uncalibrated_challenger_is_not_promoted(first_run, trained, fast_params) -> None:
    strict = GateConfig(coverage_tolerance=0.0001)
    third = log_and_register(trained, TrainConfig(params=fast_params), gate=strict, run_name="strict")
    assert not third.decision.promote
    assert alias_version(CHALLENGER) == third.version
    assert alias_version(CHAMPION) != third.version


def test_rollback_moves_the_alias_back(first_run) -> None:
    before = alias_version(CHAMPION)
    moved = rollback()
    assert moved == {"from_version": before, "to_version": 1}
    assert alias_version(CHAMPION) == 1
    with pytest.raises(ValueError, match="no earlier promoted version"):
        rollback()


def test_a_missing_alias_is_none_and_an_unreachable_registry_an_error(first_run, monkeypatch) -> None:
    import socket

    from mlflow.exceptions import MlflowException

    assert alias_version("no-such-alias") is None
    assert alias_version(CHAMPION, name="no-such-model") is None
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    # read as "no champion yet", an outage would switch monitoring off and let a challenger in unjudged
    with pytest.raises(MlflowException, match="API request"):
        alias_version(CHAMPION)


def test_a_champion_whose_files_are_gone_is_judged_away_on_calibration(
    first_run, trained, fast_params
) -> None:
    import shutil
    from pathlib import Path
    from urllib.parse import urlparse

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
    champion = alias_version(CHAMPION)
    files = Path(urlparse(client.get_model_version_download_uri("eta-model", str(champion))).path)
    versions_before = len(client.search_model_versions("name = 'eta-model'"))
    moved = files.with_name(files.name + ".away")
    files.rename(moved)
    try:
        replacement = log_and_register(trained, TrainConfig(params=fast_params), run_name="after-loss")
    finally:
        moved.rename(files)
    assert replacement.champion_version == champion
    assert replacement.decision.reasons[0].startswith(f"champion v{champion} cannot be loaded (")
    assert replacement.decision.reasons[0].endswith("judged on calibration alone")
    assert replacement.decision.champion is None
    assert replacement.decision.promote
    assert alias_version(CHAMPION) == replacement.version
    assert len(client.search_model_versions("name = 'eta-model'")) == versions_before + 1
    shutil.rmtree(moved, ignore_errors=True)


def test_the_gate_compares_on_test_days_the_champion_never_saw(city_trips, fast_params, fresh_home) -> None:
    """A champion trained three days earlier has used labels up to its last day; the challenger's test window
    reaches three days further, and only those days are the comparison window of both models."""
    import polars as pl

    from models.train import train_eta_model

    config = TrainConfig(params=fast_params)
    local_day = pl.col("start_ts").dt.convert_time_zone("Africa/Nairobi").dt.date()
    last = city_trips.select(local_day.max()).item()
    earlier = city_trips.filter(local_day <= last - dt.timedelta(days=3))
    champion = log_and_register(train_eta_model(earlier, config), config, run_name="earlier")
    challenger_result = train_eta_model(city_trips, config)
    challenger = log_and_register(challenger_result, config, run_name="later")
    seen = json.loads(champion_meta(champion.version))["last_labelled_day"]
    assert seen == str(last - dt.timedelta(days=3))
    decision = challenger.decision
    assert decision.window == f"test legs after day {seen}"
    unseen = challenger_result.test_legs.filter(local_day > dt.date.fromisoformat(seen))
    assert decision.champion["n"] == decision.challenger_on_window["n"] == unseen.height
    assert decision.challenger["n"] == challenger_result.test_legs.height > unseen.height
    assert any(f"on test legs after day {seen}" in r for r in decision.reasons)


def champion_meta(version: int) -> str:
    import mlflow

    configure()
    local = mlflow.artifacts.download_artifacts(f"models:/eta-model/{version}")
    return next(Path(local).rglob("model_meta.json")).read_text()


def test_two_registries_write_each_to_its_own_store_and_leave_the_process_alone(
    tmp_path, trained, fast_params, monkeypatch
) -> None:
    """Two Dagster registries on two sqlite stores, used one after the other in one process while
    MLFLOW_TRACKING_URI names a third: each run, version, alias, gate tag and monitoring run lands in its
    own store, the third is never opened, and the environment and MLflow's global URIs are as before."""
    import mlflow

    from pipelines.resources import ModelRegistry

    monkeypatch.setenv("ETA_HOME", str(tmp_path / "home"))  # the gate log lives here, not in a store
    third = tmp_path / "third" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{third}")
    environment = dict(os.environ)
    global_uris = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    config = TrainConfig(params=fast_params)
    stores = {name: tmp_path / name for name in ("north", "south")}
    runs = {}
    for name, folder in stores.items():
        registry = ModelRegistry(
            tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", artifacts_dir=str(folder / "artifacts")
        )
        registered = registry.register_challenger(
            trained, config, GateConfig(), f"train-{name}", {"source": name}
        )
        assert registry.promote(registered.version, registered.decision.as_dict()) is None
        monitored = registry.log_monitoring("2026-01-05", registered.version, {"coverage_80": 0.8}, [report])
        loaded = registry.load_version(registered.version)
        np.testing.assert_allclose(
            loaded.predict_quantiles(trained.test_legs.head(5)),
            trained.model.predict_quantiles(trained.test_legs.head(5)),
        )
        plots = registry.artifact_urls(registered.run_id, "plots")
        assert plots["reliability"].startswith(registry.run_url(registered.run_id).partition("?")[0])
        runs[name] = (registered, monitored.split("/runs/")[1].partition("?")[0])
        assert dict(os.environ) == environment
        assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == global_uris
    for name, folder in stores.items():
        client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}", f"sqlite:///{folder / 'mlflow.db'}")
        registered, monitoring_run = runs[name]
        found = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert {r.info.run_id for r in found} == {registered.run_id, monitoring_run}
        training = client.get_run(registered.run_id)
        assert (training.info.run_name, training.info.status) == (f"train-{name}", "FINISHED")
        assert training.data.params["source"] == name
        assert training.data.tags["registered_version"] == "1"
        assert training.data.tags["mlflow.source.name"]  # the context tags `mlflow.start_run` would give
        assert training.info.artifact_uri.startswith((folder / "artifacts" / "eta").as_uri())
        assert client.get_run(monitoring_run).data.metrics == {"coverage_80": 0.8}
        assert [a.path for a in client.list_artifacts(monitoring_run, "reports")] == ["reports/report.html"]
        assert [int(v.version) for v in client.search_model_versions("name = 'eta-model'")] == [1]
        version = client.get_model_version_by_alias("eta-model", CHAMPION)
        assert (int(version.version), version.run_id) == (1, registered.run_id)
        assert client.get_model_version("eta-model", "1").tags["gate_promote"] == "true"
    assert not third.parent.exists()
    log = (tmp_path / "home" / "registry" / "gate_decisions.jsonl").read_text().splitlines()
    assert [json.loads(line)["version"] for line in log] == [1, 1]
