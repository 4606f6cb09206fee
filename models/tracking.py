"""MLflow wiring: a tracking store under ETA_HOME by default, the `eta-model` registry and its aliases.

The store is sqlite under ETA_HOME unless MLFLOW_TRACKING_URI names another, e.g. a shared PostgreSQL
database (`postgresql+psycopg2://user@host:5432/mlflow`, docs/decisions/postgres-backends.md). Artifacts
are files under `artifact_root()` (ETA_MLFLOW_ARTIFACTS): with a store shared by several machines, that
must be a path every one of them mounts at the same place, as the experiment records it when created.
Nothing happens at import time. Code that is handed a store (the Dagster `ModelRegistry`) works through an
explicit `MlflowClient` (`open_tracking`, the `client=` of the registry helpers) and leaves MLflow's global
state and the environment alone; `configure()` points MLflow's fluent API at the store for commands and
notebooks that use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

from data_contracts.home import eta_home, require_postgres_driver

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

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


def store_uri(uri: str | None = None) -> str:
    """`uri` when given (checked like MLFLOW_TRACKING_URI), else `tracking_uri()`."""
    return require_postgres_driver(uri, "the tracking URI") if uri else tracking_uri()


def store_client(uri: str | None = None) -> MlflowClient:
    """An `MlflowClient` on the store at `store_uri(uri)`, its registry in the same store."""
    from mlflow import MlflowClient

    resolved = store_uri(uri)
    return MlflowClient(tracking_uri=resolved, registry_uri=resolved)


def display_uri(uri: str) -> str:
    """`uri` with any password in it masked, for messages, logs and status files."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def artifact_root(folder: Path | None = None) -> Path:
    """Where new experiments keep their artifacts: `folder`, else ETA_MLFLOW_ARTIFACTS, else under ETA_HOME."""
    return folder or Path(os.environ.get("ETA_MLFLOW_ARTIFACTS") or eta_home() / "mlflow" / "artifacts")


@dataclass
class Tracking:
    uri: str
    experiment_id: str

    @property
    def client(self) -> MlflowClient:
        return store_client(self.uri)


def ui_link(ui_url: str, route: str) -> str:
    """The MLflow UI address of `route` (e.g. "experiments/1/runs/<id>", "models/eta-model/versions/3"),
    opened in the model-training view."""
    return f"{ui_url.rstrip('/')}/#/{route.strip('/')}?{UI_WORKFLOW}"


def open_tracking(
    experiment: str = EXPERIMENT, uri: str | None = None, artifacts: Path | None = None
) -> Tracking:
    """The store at `store_uri(uri)` (its sqlite folder created) with `experiment` made sure of, marked as a
    model-training experiment (`EXPERIMENT_KIND_TAG`); new experiments keep artifacts under
    `artifact_root(artifacts)`. Works through a client: MLflow's global state is neither read nor set."""
    uri = store_uri(uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///").split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
    client = store_client(uri)
    existing = client.get_experiment_by_name(experiment)
    if existing is None:
        location = artifact_root(artifacts) / experiment
        location.mkdir(parents=True, exist_ok=True)
        try:
            experiment_id = client.create_experiment(
                experiment, artifact_location=location.as_uri(), tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING}
            )
        except Exception:  # another process created it between our check and create
            experiment_id = client.get_experiment_by_name(experiment).experiment_id
    else:
        experiment_id = existing.experiment_id
        if not uri.startswith("sqlite:"):  # sqlite: store and artifacts on one machine, nothing to mount
            _require_artifact_folder(experiment, existing.artifact_location)
        # made before the tag was set; a kind someone chose in the UI is left as it is
        if EXPERIMENT_KIND_TAG not in existing.tags:
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    return Tracking(uri=uri, experiment_id=experiment_id)


def configure(experiment: str = EXPERIMENT) -> Tracking:
    """`open_tracking` on the configured store, and MLflow's fluent API pointed at it and at the experiment
    for the rest of the process (commands, notebooks, `mlflow.get_run` in tests)."""
    import mlflow

    tracking = open_tracking(experiment)
    # `mlflow.set_tracking_uri` also writes MLFLOW_TRACKING_URI into the environment; put it back, so that a
    # later change of ETA_HOME in the same process (tests, backtests) is not shadowed by our own earlier value
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking.uri)
    mlflow.set_registry_uri(tracking.uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    mlflow.set_experiment(experiment_id=tracking.experiment_id)
    return tracking


# the variables MLflow's URI setters write, so that subprocesses inherit them
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def fluent_store(uri: str) -> Iterator[None]:
    """MLflow's fluent API on the store at `uri` for one block, for what MLflow offers only in fluent form
    (`mlflow.pyfunc.log_model` into a run resumed by id, `mlflow.pyfunc.load_model`). Afterwards the global
    URIs, the active experiment and the environment variables MLflow writes for them are as they were."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    # the URIs as set, not as resolved: restoring the resolved ones would pin what is now read from the env
    saved = tracking_state._tracking_uri, registry_state._registry_uri, fluent._active_experiment_id
    environment = {name: os.environ.get(name) for name in _URI_VARIABLES}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    fluent._active_experiment_id = None  # another store's experiment would refuse to resume this store's run
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved[0])
        mlflow.set_registry_uri(saved[1])
        fluent._active_experiment_id = saved[2]
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def client_run(
    tracking: Tracking, run_name: str | None = None, tags: dict[str, str] | None = None
) -> Iterator[Run]:
    """A run in the tracking's experiment, created with the tags `mlflow.start_run` gives (user, source, git
    commit, name) and ended FINISHED, or FAILED when the block raises; yields the `Run`."""
    from mlflow.entities import RunStatus
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    client = tracking.client
    named = {**(tags or {}), **({MLFLOW_RUN_NAME: run_name} if run_name else {})}
    run = client.create_run(tracking.experiment_id, tags=resolve_tags(named), run_name=run_name)
    try:
        yield run
    except BaseException:
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED))


def log_values(
    client: MlflowClient,
    run_id: str,
    params: dict | None = None,
    metrics: dict | None = None,
    tags: dict | None = None,
) -> None:
    """Params, metrics (step 0, now) and tags of a run in one batch, as `mlflow.log_params`, `log_metrics`
    and `set_tags` log them."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


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


def alias_version(alias: str, name: str = REGISTERED_MODEL, client: MlflowClient | None = None) -> int | None:
    """The version an alias points at in `client`'s registry (default `store_client()`), or None when the
    alias (or the model) does not exist.

    Any other failure (the registry unreachable, a broken store) is raised: a caller that read it as "no
    champion yet" would switch monitoring off, or promote without comparing, while the registry is down."""
    from mlflow.exceptions import MlflowException

    client = client or store_client()
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


def set_alias(
    alias: str, version: int, name: str = REGISTERED_MODEL, client: MlflowClient | None = None
) -> None:
    """Point `alias` at `version` (in `client`'s registry, default `store_client()`); ValueError names the
    versions that exist when it is not one of them."""
    from mlflow.exceptions import MlflowException

    client = client or store_client()
    try:
        client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as err:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        if version in versions:
            raise
        raise ValueError(
            f"{name} has no version {version}; its versions are {versions or 'none yet'}"
        ) from err


def log_gate_decision(
    version: int, decision: dict, name: str = REGISTERED_MODEL, client: MlflowClient | None = None
) -> Path:
    """Record a gate decision on the model version (tags, through `client`, default `store_client()`) and in
    an append-only log under ETA_HOME."""
    client = client or store_client()
    client.set_model_version_tag(name, str(version), "gate_promote", str(decision["promote"]).lower())
    client.set_model_version_tag(name, str(version), "gate_reasons", "; ".join(decision["reasons"])[:5000])
    log = eta_home() / "registry" / "gate_decisions.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(json.dumps({"model": name, "version": version, **decision}, default=str) + "\n")
    return log
