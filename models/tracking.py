"""MLflow wiring: a tracking store under ETA_HOME by default, the `eta-model` registry and its aliases.

The store is sqlite under ETA_HOME unless MLFLOW_TRACKING_URI names another, e.g. a shared PostgreSQL
database (`postgresql+psycopg2://user@host:5432/mlflow`, docs/decisions/postgres-backends.md). Artifacts
are files under `artifact_root()` (ETA_MLFLOW_ARTIFACTS): with a store shared by several machines, that
must be a path every one of them mounts at the same place, as the experiment records it when created.
Nothing happens at import time; `configure()` sets the tracking URI when a command or service starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

from data_contracts.home import eta_home, require_postgres_driver

REGISTERED_MODEL = "eta-model"
EXPERIMENT = "eta"
CHAMPION, CHALLENGER = "champion", "challenger"
# the logged pyfunc's artifact that holds the `EtaModel` bundle folder (`context.artifacts[MODEL_ARTIFACT]`)
MODEL_ARTIFACT = "eta_model"
# MLflow's experiment-type tag and its value for classic model training, as its UI (the ExperimentKind enum in
# mlflow/server/js) and mlflow/assistant/skills/mlflow-onboarding/SKILL.md read it; its demo sets "genai_development"
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# MLflow 3.17's UI opens an experiment in its GenAI or its model-training view by the `workflowType` query
# parameter, else the browser's last choice (GenAI at first); links that carry it land on runs and models
UI_WORKFLOW = "workflowType=machine_learning"
# sqlite: wait up to 60 s for a lock instead of failing with "database is locked" when Dagster runs
# steps in parallel processes
SQLITE_TIMEOUT_S = 60


def default_tracking_uri() -> str:
    db = eta_home() / "mlflow" / "mlflow.db"
    return f"sqlite:///{db}?timeout={SQLITE_TIMEOUT_S}"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set (e.g. postgresql+psycopg2://), else the sqlite store under ETA_HOME."""
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if not configured:
        return default_tracking_uri()
    return require_postgres_driver(configured, "MLFLOW_TRACKING_URI")


def display_uri(uri: str) -> str:
    """`uri` with any password in it masked, for messages, logs and status files."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def artifact_root() -> Path:
    """Where new experiments keep their artifacts: ETA_MLFLOW_ARTIFACTS, else under ETA_HOME."""
    return Path(os.environ.get("ETA_MLFLOW_ARTIFACTS") or eta_home() / "mlflow" / "artifacts")


@dataclass
class Tracking:
    uri: str
    experiment_id: str

    @property
    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)


def ui_link(ui_url: str, route: str) -> str:
    """The MLflow UI address of `route` (e.g. "experiments/1/runs/<id>", "models/eta-model/versions/3"),
    opened in the model-training view."""
    return f"{ui_url.rstrip('/')}/#/{route.strip('/')}?{UI_WORKFLOW}"


def configure(experiment: str = EXPERIMENT) -> Tracking:
    """Point MLflow at the store (creating the sqlite folder) and make sure the experiment exists, marked
    as a model-training experiment (`EXPERIMENT_KIND_TAG`)."""
    import mlflow

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///").split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
    # `mlflow.set_tracking_uri` also writes MLFLOW_TRACKING_URI into the environment; put it back, so that a
    # later change of ETA_HOME in the same process (tests, backtests) is not shadowed by our own earlier value
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    existing = mlflow.get_experiment_by_name(experiment)
    if existing is None:
        location = artifact_root() / experiment
        location.mkdir(parents=True, exist_ok=True)
        try:
            experiment_id = mlflow.create_experiment(
                experiment, artifact_location=location.as_uri(), tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING}
            )
        except Exception:  # another process created it between our check and create
            experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
    else:
        experiment_id = existing.experiment_id
        if not uri.startswith("sqlite:"):  # sqlite: store and artifacts on one machine, nothing to mount
            _require_artifact_folder(experiment, existing.artifact_location)
        # made before the tag was set; a kind someone chose in the UI is left as it is
        if EXPERIMENT_KIND_TAG not in existing.tags:
            mlflow.MlflowClient(tracking_uri=uri).set_experiment_tag(
                experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING
            )
    mlflow.set_experiment(experiment_id=experiment_id)
    return Tracking(uri=uri, experiment_id=experiment_id)


def _require_artifact_folder(experiment: str, location: str) -> None:
    """A shared store whose experiment keeps artifacts in a folder this machine lacks would have MLflow
    write a local folder of that name and read nothing: say which path must be mounted instead."""
    if not location.startswith("file://"):
        return
    folder = Path(url2pathname(urlsplit(location).path))
    if not folder.is_dir():
        raise RuntimeError(
            f"experiment {experiment!r} keeps its artifacts in {folder}, which this machine does not have: "
            "mount the shared artifact folder there (ETA_MLFLOW_ARTIFACTS names it on the machine that "
            "created the experiment)"
        )


def alias_version(alias: str, name: str = REGISTERED_MODEL) -> int | None:
    """The version an alias points at, or None when the alias (or the model) does not exist.

    Any other failure (the registry unreachable, a broken store) is raised: a caller that read it as "no
    champion yet" would switch monitoring off, or promote without comparing, while the registry is down."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as err:
        if _not_found(err):
            return None
        raise


def _not_found(err) -> bool:
    """MLflow's answer for a missing model (RESOURCE_DOES_NOT_EXIST) or a missing alias (which it files
    under INVALID_PARAMETER_VALUE, 'Registered model alias ... not found')."""
    message = str(err)
    return err.error_code == "RESOURCE_DOES_NOT_EXIST" or (
        err.error_code == "INVALID_PARAMETER_VALUE" and "alias" in message and "not found" in message
    )


def set_alias(alias: str, version: int, name: str = REGISTERED_MODEL) -> None:
    """Point `alias` at `version`; ValueError names the versions that exist when it is not one of them."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
    try:
        client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as err:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        if version in versions:
            raise
        raise ValueError(
            f"{name} has no version {version}; its versions are {versions or 'none yet'}"
        ) from err


def log_gate_decision(version: int, decision: dict, name: str = REGISTERED_MODEL) -> Path:
    """Record a gate decision on the model version (tags) and in an append-only log under ETA_HOME."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
    client.set_model_version_tag(name, str(version), "gate_promote", str(decision["promote"]).lower())
    client.set_model_version_tag(name, str(version), "gate_reasons", "; ".join(decision["reasons"])[:5000])
    log = eta_home() / "registry" / "gate_decisions.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(json.dumps({"model": name, "version": version, **decision}, default=str) + "\n")
    return log
