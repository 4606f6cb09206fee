"""Where the served model comes from, and the holder that swaps it atomically when the alias moves.

Sources share one small interface (`current_version`, `load`): the registry as a publisher process keeps
it in a local folder (serving.publisher; development and registry-backed deployments), the BentoML model
store inside a built Bento (no registry), and memory (tests). Requests read `ModelHolder.current` once
and use that snapshot for everything they compute, so a swap never mixes versions within a response.
`current_version` raises `SourceUnavailable` with the reason when the source cannot say (the holder
keeps what it serves), and returns None when no model is registered (the service then answers 503).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from models.tracking import display_uri
from serving.schemas import ModelInfo, SwapResult

if TYPE_CHECKING:  # the model code (polars, numpy) is imported where a model is loaded
    import numpy as np

    from models.bundle import EtaModel
    from models.online import OnlineState, StateStore

logger = logging.getLogger(__name__)
BUNDLE_DIR = "eta_model"  # the EtaModel folder inside a BentoML model
PUBLISHER_PID = "ETA_SERVE_PUBLISHER_PID"  # set by `eta serve`: the publisher it started for the worker


class SourceUnavailable(RuntimeError):
    """The source cannot say which version to serve now (the registry is unreachable, say)."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    model: EtaModel
    info: ModelInfo
    online: OnlineState | None = None  # the online calibration state that adjusts its answers (models.online)

    @property
    def version(self) -> str:
        return self.info.version

    @cached_property
    def payload(self) -> dict[str, object]:
        """`info` as JSON-ready data (computed once per model)."""
        return self.info.model_dump(mode="json")


class ModelSource(Protocol):
    def current_version(self) -> str | None:
        """The version that should be served now (cheap; polled); None: no model is registered."""
        ...

    def load(self, version: str) -> LoadedModel: ...

    def check_now(self) -> None:
        """Ask the source to look again now (the admin reload); raises SourceUnavailable if it cannot."""
        ...

    def describe(self) -> str: ...


def published_folder(tracking_uri: str, name: str, alias: str) -> Path:
    """Where the publisher of one registry and alias keeps its downloads and status (under ETA_HOME)."""
    from data_contracts.home import eta_home

    registry = hashlib.sha1(tracking_uri.encode()).hexdigest()[:8]
    return eta_home() / "serving" / f"{name}@{alias}-{registry}"


# With polling off (ETA_SERVE_POLL_SECONDS=0) the publisher still checks this often: its status then shows
# that it is alive, and /admin/reload finds a fresh download.
POLL_WHEN_OFF_S = 30.0


def publisher_poll_s(poll_seconds: float) -> float:
    """How often the publisher checks the registry, for the service's poll_seconds."""
    return poll_seconds if poll_seconds > 0 else POLL_WHEN_OFF_S


def start_publisher(
    folder: Path, tracking_uri: str, name: str, alias: str, poll_s: float
) -> subprocess.Popen:
    """A publisher (serving.publisher) for `folder`, as a child of this process (it exits with it)."""
    command = [
        sys.executable,
        "-m",
        "serving.publisher",
        "--folder",
        str(folder),
        "--tracking-uri",
        tracking_uri,
    ]
    command += ["--name", name, "--alias", alias, "--poll", str(poll_s), "--parent", str(os.getpid())]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    logger.info(
        "event=publisher_started pid=%s folder=%s registry=%s", process.pid, folder, display_uri(tracking_uri)
    )
    return process


def _alive(pid: int) -> bool:
    """The process runs. A zombie does not: a killed publisher stays one until its parent reaps it (BentoML's
    arbiter, the parent of the one `eta serve` starts, reaps every 10 s)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class PublishedSource:
    """`models:/<name>@<alias>` as a publisher process keeps it in `folder`; this process reads files only.

    The publisher `eta serve` started is used while it lives (ETA_SERVE_PUBLISHER_PID); otherwise, and
    whenever the one in use has died, this source starts its own, so a dead publisher is replaced at the
    next poll. A status older than `stale_after_s` means the publisher is not checking (e.g. a registry
    lock it waits on): the source says so instead of serving on in silence."""

    def __init__(self, folder: Path, tracking_uri: str, name: str, alias: str, poll_s: float) -> None:
        self.folder, self.tracking_uri, self.name, self.alias = Path(folder), tracking_uri, name, alias
        self.poll_s = publisher_poll_s(poll_s)
        self.stale_after_s = max(3 * self.poll_s, POLL_WHEN_OFF_S)
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        adopted = os.environ.get(PUBLISHER_PID)
        self._adopted = int(adopted) if adopted and adopted.isdigit() and _alive(int(adopted)) else None
        self.ensure_publisher()

    def describe(self) -> str:
        return f"models:/{self.name}@{self.alias} at {display_uri(self.tracking_uri)}"

    def __repr__(self) -> str:
        return f"PublishedSource({self.describe()})"

    def ensure_publisher(self) -> None:
        """Start a publisher unless one is working for this folder: ours, the adopted one, or another
        worker's (several workers of one host share a folder and need only one publisher)."""
        from serving.publisher import read_status

        with self._lock:
            if self.process is not None and self.process.poll() is None:
                return
            if self._adopted is not None and _alive(self._adopted):
                return
            if self.process is not None:
                logger.warning(
                    "event=publisher_died pid=%s code=%s", self.process.pid, self.process.returncode
                )
                self.process = None
            other = (read_status(self.folder) or {}).get("pid")
            if isinstance(other, int) and _alive(other):
                self._adopted = other
                return
            self._adopted = None
            self.process = start_publisher(self.folder, self.tracking_uri, self.name, self.alias, self.poll_s)

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()

    def status(self) -> dict[str, object] | None:
        """The last status, if a living publisher wrote it (a dead one's may name a version since moved)."""
        from serving.publisher import read_status

        status = read_status(self.folder)
        ours = self.process.pid if self.process is not None else self._adopted
        if status is None or not isinstance(status.get("pid"), int):
            return None
        return status if status["pid"] == ours or _alive(status["pid"]) else None

    def current_version(self) -> str | None:
        self.ensure_publisher()
        status = self.status()
        if status is None:
            raise SourceUnavailable(f"waiting for the registry publisher's first check of {self.describe()}")
        age = time.time() - float(status["checked_at"])
        if age > self.stale_after_s:
            raise SourceUnavailable(
                f"the registry publisher has not checked {self.describe()} for {age:.0f} s"
                + (f" (last error: {status['error']})" if status.get("error") else "")
            )
        if status.get("error"):
            raise SourceUnavailable(str(status["error"]))
        return None if status["version"] is None else str(status["version"])

    def no_model_reason(self) -> str:
        status = self.status() or {}
        return str(
            status.get("detail")
            or f"no model registered as {self.name}@{self.alias} at {display_uri(self.tracking_uri)}"
        )

    def check_now(self, timeout_s: float = 15.0) -> None:
        """Have the publisher check the registry now and wait for its answer."""
        from serving.publisher import request_check

        self.ensure_publisher()
        asked = time.time()
        request_check(self.folder)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None and float(status["checked_at"]) >= asked:
                if status.get("error"):
                    raise SourceUnavailable(str(status["error"]))
                return
            time.sleep(0.05)
        raise SourceUnavailable(
            f"the registry publisher did not check {self.describe()} within {timeout_s:.0f} s"
        )

    def load(self, version: str) -> LoadedModel:
        from models.bundle import EtaModel
        from serving.publisher import bundle_of

        status = self.status() or {}
        bundle = Path(str(status["bundle"])) if str(status.get("version")) == version else None
        if bundle is None or not bundle.exists():
            bundle = bundle_of(self.folder / f"v{version}", f"{self.name} version {version}")
        info = ModelInfo(
            name=self.name, version=version, alias=self.alias, source="registry", run_id=status.get("run_id")
        )
        return LoadedModel(EtaModel.load(bundle), info)


class BentoStoreSource:
    """The model a Bento carries (saved by `serving.packaging.export_champion`); its version never moves."""

    def __init__(self, path: Path, labels: dict[str, str]) -> None:
        self.path, self.labels = Path(path), labels

    def describe(self) -> str:
        return f"the model this Bento carries ({self.labels.get('mlflow_name', 'eta-model')} v{self.labels['mlflow_version']})"

    def current_version(self) -> str | None:
        return self.labels["mlflow_version"]

    def check_now(self) -> None:
        return None

    def no_model_reason(self) -> str:
        return "the Bento carries no model"

    def load(self, version: str) -> LoadedModel:
        from models.bundle import EtaModel

        model = EtaModel.load(self.path / BUNDLE_DIR)
        info = ModelInfo(
            name=self.labels.get("mlflow_name", "eta-model"),
            version=version,
            alias=self.labels.get("mlflow_alias"),
            source="bento",
            run_id=self.labels.get("mlflow_run_id"),
        )
        return LoadedModel(model, info)


class InMemorySource:
    """Models by version and a movable pointer, for tests."""

    def __init__(
        self,
        models: dict[str, EtaModel],
        version: str | None,
        name: str = "eta-model",
        alias: str = "champion",
    ) -> None:
        self.models, self.version, self.name, self.alias = models, version, name, alias
        self.loads: list[str] = []
        self.unavailable: str | None = None  # set by a test: the source then cannot say

    def describe(self) -> str:
        return f"models:/{self.name}@{self.alias} in memory"

    def current_version(self) -> str | None:
        if self.unavailable:
            raise SourceUnavailable(self.unavailable)
        return self.version

    def check_now(self) -> None:
        if self.unavailable:
            raise SourceUnavailable(self.unavailable)

    def no_model_reason(self) -> str:
        return f"no model registered as {self.name}@{self.alias} in memory"

    def load(self, version: str) -> LoadedModel:
        self.loads.append(version)
        return LoadedModel(
            self.models[version],
            ModelInfo(name=self.name, version=version, alias=self.alias, source="memory"),
        )


def probe(model: EtaModel) -> np.ndarray:
    """One real prediction; raises if the answer is not finite, positive and monotone."""
    import numpy as np

    from serving.frames import probe_frame

    q = model.predict_quantiles(probe_frame())
    if q.shape != (1, len(model.quantiles)) or not np.all(np.isfinite(q)) or not np.all(q > 0):
        raise RuntimeError(f"probe prediction is not finite and positive: {q.tolist()}")
    if np.any(np.diff(q, axis=1) < 0):
        raise RuntimeError(f"probe prediction has crossing quantiles: {q.tolist()}")
    return q


class ModelHolder:
    """The served model (or none yet, with the reason); `refresh()` loads a new version beside the old one
    and swaps the reference. A LightGBM model is served with `tree_threads` threads."""

    def __init__(
        self, source: ModelSource, tree_threads: int = 1, online_store: StateStore | None = None
    ) -> None:
        self.source = source
        self.online_store = online_store
        self.tree_threads = tree_threads
        self._current: LoadedModel | None = None
        self._refresh_lock = threading.Lock()  # one load at a time; readers never wait on it
        self.last_error: str | None = None  # why the last check failed (None: it succeeded)
        self.last_checked: float | None = None  # when a check last succeeded (time.time())

    @property
    def current(self) -> LoadedModel:
        if self._current is None:
            raise NoModel(self.unavailable_reason())
        return self._current

    @property
    def loaded(self) -> bool:
        return self._current is not None

    def unavailable_reason(self) -> str:
        """Why there is no model to serve (or why the source cannot be trusted now)."""
        if self.last_error:
            return self.last_error
        if self.last_checked is None:
            return f"the first check of {self.source.describe()} has not finished"
        return self.source.no_model_reason()

    def _install(self, loaded: LoadedModel) -> LoadedModel:
        """Make `loaded` current (callers hold the refresh lock)."""
        model = loaded.model
        kind = getattr(model.regressor, "kind", None)
        if kind == "lightgbm" and model.regressor.params.num_threads != self.tree_threads:
            params = replace(model.regressor.params, num_threads=self.tree_threads)
            model = replace(model, regressor=replace(model.regressor, params=params))
        loaded = self._with_online(LoadedModel(model, loaded.info.model_copy(update={"trees": kind})))
        self._current = loaded  # one reference assignment: requests see the old or the new model, whole
        return loaded

    def refresh(self) -> SwapResult:
        """Swap to the version the source names now, if it differs; a failed check or load keeps the old
        model (and is remembered as the reason for /readyz until a check succeeds)."""
        with self._refresh_lock:
            previous = self._current.version if self._current is not None else None
            try:
                version = self.source.current_version()
            except SourceUnavailable as exc:
                self._failed(str(exc))
                raise
            self.last_checked, self.last_error = time.time(), None
            if version is None or version == previous:
                detail = self.source.no_model_reason() if version is None else "already serving this version"
                return SwapResult(previous_version=previous, version=previous, swapped=False, detail=detail)
            try:
                loaded = self.source.load(version)
                probe(loaded.model)
            except Exception as exc:
                self._failed(f"v{version} cannot be served: {type(exc).__name__}: {exc}")
                raise SourceUnavailable(self.last_error) from exc
            self._install(loaded)
            logger.info(
                "event=%s from=%s to=%s source=%s",
                "swap" if previous else "load",
                previous,
                version,
                self.source.describe(),
            )
            return SwapResult(previous_version=previous, version=version, swapped=True, detail="swapped")

    def _failed(self, reason: str) -> None:
        if reason != self.last_error:
            logger.warning(
                "event=check_failed serving=%s reason=%s",
                self._current.version if self._current else None,
                reason,
            )
        self.last_error = reason

    def stop(self) -> None:
        stop = getattr(self.source, "stop", None)
        if stop is not None:
            stop()

    def _with_online(self, loaded: LoadedModel, state: OnlineState | None = None) -> LoadedModel:
        """`loaded` with the newest online state of its version (or `state`), and its answers saying so."""
        if state is None and self.online_store is not None:
            state = self.online_store.latest(loaded.info.name, int(loaded.version))
        described = state.describe() if state is not None else None
        return replace(
            loaded, online=state, info=loaded.info.model_copy(update={"online_calibration": described})
        )

    def refresh_online(self) -> bool:
        """Pick up a newer online state of the served version (no restart, no request fails); True if one was."""
        if self.online_store is None or self._current is None:
            return False
        with self._refresh_lock:
            current = self.current
            revision = self.online_store.latest_revision(current.info.name, int(current.version))
            if revision == (current.online.revision if current.online else None):
                return False
            state = (
                None
                if revision is None
                else self.online_store.latest(current.info.name, int(current.version))
            )
            self._current = self._with_online(current, state)
            logger.info("event=online_state version=%s revision=%s", current.version, revision)
            return True


class NoModel(RuntimeError):
    """Nothing to serve yet; the message says why (answered as 503)."""
