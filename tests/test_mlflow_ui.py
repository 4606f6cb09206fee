"""What the MLflow UI shows of a training run, read back through `MlflowClient` (no browser): the
experiment kind, the run's three datasets and description, the grouped metric names, the registered
version's and model's descriptions, and a model logged as code without MLflow's pickle warning."""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from pathlib import Path

import pytest

from models.registry import log_and_register
from models.run_record import MODEL_DESCRIPTION, describe_version, logged_metric_name, run_metrics
from models.tracking import (
    EXPERIMENT,
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING,
    REGISTERED_MODEL,
    configure,
    ui_link,
)
from models.train import TrainConfig


@pytest.fixture(scope="module")
def fresh_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow_ui_home")
    previous = os.environ["ETA_HOME"]
    os.environ["ETA_HOME"] = str(home)
    yield home
    os.environ["ETA_HOME"] = previous


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def logged(fresh_home, trained, fast_params):
    """One registered run, with every Python warning and every MLflow log warning it raised."""
    import mlflow  # noqa: F401  (imported first: MLflow configures its loggers, and their handlers, on import)

    source = fresh_home / "trips.parquet"
    records = _Records()
    mlflow_logger = logging.getLogger("mlflow")
    mlflow_logger.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = log_and_register(
                trained,
                TrainConfig(params=fast_params),
                run_name="ui",
                extra_params={"source": "synthetic"},
                data_source=str(source),
            )
    finally:
        mlflow_logger.removeHandler(records)
    return run, source, caught, records.records


@pytest.fixture(scope="module")
def client(logged):
    return configure().client


def test_the_run_lists_its_three_windows_as_datasets(logged, client, trained) -> None:
    run, source, _, _ = logged
    inputs = client.get_run(run.run_id).inputs.dataset_inputs
    by_context = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i for i in inputs}
    assert set(by_context) == {"training", "calibration", "test"}
    for window, context in (("train", "training"), ("calibration", "calibration"), ("test", "test")):
        dataset = by_context[context].dataset
        days = getattr(trained.windows, window)
        assert dataset.name == f"synthetic-{context}"
        assert json.loads(dataset.profile) == {
            "num_rows": trained.rows[window],
            "days": f"{days[0]}..{days[-1]}",
            "split_by": "date",
        }
        assert json.loads(dataset.source) == {"uri": str(source)}
        columns = {c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]}
        assert columns == set(trained.test_legs.columns)
        assert {t.key: t.value for t in by_context[context].tags}["data_hash"] == trained.data_hash
    assert len({i.dataset.digest for i in inputs}) == 3  # one digest per window


def test_the_run_has_a_description_with_windows_source_and_gate(logged, client, trained) -> None:
    run, source, _, _ = logged
    note = client.get_run(run.run_id).data.tags["mlflow.note.content"]
    windows = trained.windows.as_dict()
    assert f"**{source}**" in note
    assert trained.data_hash in note
    assert f"- training: {windows['train_days']} ({trained.rows['train']:,} legs)" in note
    assert f"- calibration: {windows['calibration_days']} ({trained.rows['calibration']:,} legs)" in note
    assert f"- test: {windows['test_days']} ({trained.rows['test']:,} legs)" in note
    assert f"80% coverage {trained.metrics['coverage_80']:.3f}" in note
    assert note.endswith(f"Gate at registration: promote ({'; '.join(run.decision.reasons)}).")


def test_the_version_and_the_registered_model_have_descriptions(logged, client, trained) -> None:
    run, source, _, _ = logged
    description = client.get_model_version(REGISTERED_MODEL, str(run.version)).description
    assert description.startswith(f"lightgbm on {source} (data hash {trained.data_hash})")
    assert description.endswith(f"Run {run.run_id}.")
    assert client.get_registered_model(REGISTERED_MODEL).description == MODEL_DESCRIPTION


def test_a_model_description_written_in_the_ui_is_kept(logged, client) -> None:
    run = logged[0]
    before = client.get_model_version(REGISTERED_MODEL, str(run.version)).description
    client.update_registered_model(REGISTERED_MODEL, description="our own words")
    try:
        describe_version(client, run.version, "this version")
        assert client.get_model_version(REGISTERED_MODEL, str(run.version)).description == "this version"
        assert client.get_registered_model(REGISTERED_MODEL).description == "our own words"
    finally:
        client.update_registered_model(REGISTERED_MODEL, description=MODEL_DESCRIPTION)
        client.update_model_version(REGISTERED_MODEL, str(run.version), description=before)


def test_the_experiments_are_model_training_experiments(logged, client) -> None:
    assert client.get_experiment_by_name(EXPERIMENT).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    monitoring = configure("eta-monitoring")
    configure()
    assert client.get_experiment(monitoring.experiment_id).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING


def test_an_experiment_made_before_the_kind_gets_it_and_a_chosen_kind_stays(logged, client) -> None:
    older = client.create_experiment(
        "made-earlier", artifact_location=(Path(os.environ["ETA_HOME"]) / "x").as_uri()
    )
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    try:
        configure("made-earlier"), configure("chosen")
    finally:
        configure()
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_logging_the_model_warns_nothing_about_pickling(logged, client) -> None:
    run, _, caught, records = logged
    pickle_warnings = [
        str(w.message)
        for w in caught
        if "pickle" in str(w.message).lower() or "python_model" in str(w.message)
    ]
    pickle_logs = [r.getMessage() for r in records if "pickle" in r.getMessage().lower()]
    assert pickle_warnings == []
    assert pickle_logs == []
    # nothing else from MLflow either (it warned that a local data source path was ambiguous); SQLAlchemy's
    # deprecation of the `noload` strategy MLflow's own ORM declares (dbmodels, MCP endpoints) is not about
    # what we log, and comes once per process, on whichever test first configures the mappers
    from_mlflow = [w for w in caught if "mlflow" in w.filename and "``noload``" not in str(w.message)]
    assert [f"{w.filename}: {w.message}" for w in from_mlflow] == []
    import mlflow

    model_dir = Path(mlflow.artifacts.download_artifacts(run.model_uri))
    pyfunc = (model_dir / "MLmodel").read_text()
    assert "model_code_path:" in pyfunc
    assert "python_model.pkl" not in pyfunc
    assert (model_dir / "pyfunc_model.py").is_file()


@pytest.mark.parametrize(
    ("name", "logged_as"),
    [
        ("coverage_80", "coverage_80"),
        ("mae_s", "mae_s"),
        ("pinball_q50", "pinball_q50"),
        ("late_brier_skill", "late_brier_skill"),
        ("baseline_cell_hour_mae_s", "baseline/cell_hour_mae_s"),
        ("profile_no_weather_coverage_80", "profile/no_weather_coverage_80"),
        ("profile_unseen_courier_n", "profile/unseen_courier_n"),
        ("segment_region_worst_gap_80", "segment/region_worst_gap_80"),
        ("enroute_0.5x_width_80_s", "enroute/0.5x_width_80_s"),
        ("calibration_origin_cell_groups", "calibration/origin_cell_groups"),
        ("seconds_refit", "seconds/refit"),
    ],
)
def test_breakdown_metrics_are_logged_in_sections(name: str, logged_as: str) -> None:
    assert logged_metric_name(name) == logged_as


def test_the_run_holds_every_metric_once_under_its_logged_name(logged, client, trained) -> None:
    run, _, _, _ = logged
    metrics = client.get_run(run.run_id).data.metrics
    assert metrics == pytest.approx(run_metrics(trained))
    finite = [v for v in trained.metrics.values() if math.isfinite(v)] + [
        v for m in trained.baseline_metrics.values() for v in m.values() if math.isfinite(v)
    ]
    assert len(metrics) == len(finite)  # no two names fold into one
    assert metrics["coverage_80"] == pytest.approx(trained.metrics["coverage_80"])
    assert metrics["baseline/global_mae_s"] == pytest.approx(trained.baseline_metrics["global"]["mae_s"])
    sections = {k.split("/")[0] for k in metrics if "/" in k}
    assert sections == {"baseline", "calibration", "enroute", "profile", "seconds", "segment"}


def test_ui_links_open_the_model_training_view() -> None:
    assert (
        ui_link("http://127.0.0.1:5001/", "/experiments/3/runs/abc")
        == "http://127.0.0.1:5001/#/experiments/3/runs/abc?workflowType=machine_learning"
    )
    assert (
        ui_link("http://mlflow.internal", "models/eta-model/versions/2")
        == "http://mlflow.internal/#/models/eta-model/versions/2?workflowType=machine_learning"
    )
