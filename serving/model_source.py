"""Where the served model comes from, and the holder that swaps it atomically when the alias moves.

Sources share one small interface (`current_version`, `load`): the MLflow registry (development and
registry-backed deployments), the BentoML model store inside a built Bento (no registry at start), and
memory (tests). Requests read `ModelHolder.current` once and use that snapshot for everything they
compute, so a swap never mixes versions within a response.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from serving.schemas import ModelInfo, SwapResult

if TYPE_CHECKING:  # the model code (polars, numpy) is imported where a model is loaded or probed: a
    # registry source is created first and starts its sidecar sooner (serving.service)
    import numpy as np

    from models.bundle import EtaModel
    from models.online import OnlineState, StateStore

logger = logging.getLogger(__name__)
BUNDLE_DIR = "eta_model"  # the EtaModel folder inside a BentoML model


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
        """The version that should be served now (cheap; polled)."""
        ...

    def load(self, version: str) -> LoadedModel: ...


class RegistrySource:
    """`models:/<name>@<alias>` in the MLflow registry at the configured tracking URI.

    The registry is asked through a sidecar process (`serving.registry_sync`), which imports mlflow and
    downloads versions; this process loads the downloaded bundle and never imports mlflow. Creating the
    source starts the sidecar (or finds the one `eta serve` started), so it works while the caller goes on.
    """

    def __init__(self, name: str, alias: str) -> None:
        from models.tracking import tracking_uri
        from serving.registry_sync import sidecar_for

        self.name, self.alias, self.uri = name, alias, tracking_uri()
        sidecar_for(self.uri, prefetch=(name, alias))  # started now: it works while the caller goes on
        self._found: dict[str, dict[str, object]] = {}  # version -> the sidecar's answer (bundle, run id)

    def __repr__(self) -> str:
        return f"RegistrySource(models:/{self.name}@{self.alias} at {self.uri})"

    def current_version(self) -> str | None:
        answer = self._ask({"op": "resolve", "name": self.name, "alias": self.alias})
        if answer["version"] is None:
            return None
        version = str(answer["version"])
        self._found[version] = answer
        return version

    def _ask(self, request: dict[str, object]) -> dict[str, object]:
        from serving.registry_sync import sidecar_for

        return sidecar_for(self.uri).ask(request)

    def load(self, version: str) -> LoadedModel:
        # by version, not by alias: the alias may move between resolving it and loading it
        answer = self._found.get(version)
        if answer is None or not Path(str(answer["bundle"])).exists():  # (a sidecar restarted since)
            answer = self._ask({"op": "fetch", "name": self.name, "version": version})
        from models.bundle import EtaModel

        model = EtaModel.load(Path(str(answer["bundle"])))
        info = ModelInfo(
            name=self.name, version=version, alias=self.alias, source="registry", run_id=answer["run_id"]
        )
        return LoadedModel(model, info)


class BentoStoreSource:
    """The model a Bento carries (saved by `serving.packaging.export_champion`); its version never moves."""

    def __init__(self, path: Path, labels: dict[str, str]) -> None:
        self.path, self.labels = Path(path), labels

    def current_version(self) -> str | None:
        return self.labels["mlflow_version"]

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


@dataclass
class InMemorySource:
    """Models by version and a movable pointer, for tests."""

    models: dict[str, EtaModel]
    version: str | None
    name: str = "eta-model"
    alias: str = "champion"
    loads: list[str] = field(default_factory=list)

    def current_version(self) -> str | None:
        return self.version

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
    """The served model; `refresh()` loads a new version beside the old one and swaps the reference.
    A LightGBM model is served with `tree_threads` threads (its boosters side by side on larger batches)."""

    def __init__(
        self, source: ModelSource, tree_threads: int = 1, online_store: StateStore | None = None
    ) -> None:
        self.source = source
        self.online_store = online_store
        self.tree_threads = tree_threads
        self._current: LoadedModel | None = None
        self._refresh_lock = threading.Lock()  # one load at a time; readers never wait on it

    @property
    def current(self) -> LoadedModel:
        if self._current is None:
            raise RuntimeError("no model loaded yet")
        return self._current

    @property
    def loaded(self) -> bool:
        return self._current is not None

    def load_initial(self) -> LoadedModel:
        version = self.source.current_version()
        if version is None:
            raise RuntimeError(f"nothing to serve: {self.source!r} names no model version")
        loaded = self.source.load(version)
        probe(loaded.model)
        loaded = self._install(loaded)
        logger.info("serving %s v%s (%s)", loaded.info.name, loaded.version, loaded.info.source)
        return loaded

    def _install(self, loaded: LoadedModel) -> LoadedModel:
        """Make `loaded` current (callers hold the refresh lock or run before serving starts)."""
        model = loaded.model
        kind = getattr(model.regressor, "kind", None)
        if kind == "lightgbm" and model.regressor.params.num_threads != self.tree_threads:
            params = replace(model.regressor.params, num_threads=self.tree_threads)
            model = replace(model, regressor=replace(model.regressor, params=params))
        loaded = self._with_online(LoadedModel(model, loaded.info.model_copy(update={"trees": kind})))
        self._current = loaded  # one reference assignment: requests see the old or the new model, whole
        return loaded

    def stop(self) -> None:
        """Nothing runs in the background of the holder itself (kept for the service's shutdown)."""

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
            logger.info("v%s: online calibration revision %s", current.version, revision)
            return True

    def refresh(self) -> SwapResult:
        """Swap to the version the source names now, if it differs; a failed load keeps the old model."""
        with self._refresh_lock:
            previous = self.current
            version = self.source.current_version()
            if version is None or version == previous.version:
                detail = "alias not found" if version is None else "already serving this version"
                return SwapResult(
                    previous_version=previous.version, version=previous.version, swapped=False, detail=detail
                )
            loaded = self.source.load(version)
            probe(loaded.model)
            self._install(loaded)
            logger.info("swapped model v%s -> v%s", previous.version, version)
            return SwapResult(
                previous_version=previous.version, version=version, swapped=True, detail="swapped"
            )
