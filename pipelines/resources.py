"""Resources: where the pipeline reads trips, keeps its tables, registers models and judges drift.

Each is a `ConfigurableResource` whose defaults resolve under ETA_HOME *when used* (not at import), so a test
swaps in temp-dir versions by passing paths, and the real deployment sets them from config or `EnvVar`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from data_contracts.home import eta_home
from data_contracts.safe_io import first_line, write_atomic

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from models.tracking import Tracking

SYNTHETIC_START = "2026-01-05"  # the simulated city's first day (the demo and the partitions start here)
MONITORING_EXPERIMENT = "eta-monitoring"  # one MLflow run per monitored day


def _day(partition_key: str) -> date:
    return date.fromisoformat(partition_key)


class Warehouse(dg.ConfigurableResource):
    """The pipeline's outputs: one Parquet or JSON file per asset and daily partition, plus reports,
    plots and the per-model monitoring references. `root` empty means ETA_HOME/pipeline."""

    root: str = ""

    @property
    def base(self) -> Path:
        return Path(self.root) if self.root else eta_home() / "pipeline"

    def path(self, asset: str, partition: str, suffix: str = ".parquet") -> Path:
        return self.base / asset / f"date={partition}{suffix}"

    def has(self, asset: str, partition: str, suffix: str = ".parquet") -> bool:
        return self.path(asset, partition, suffix).exists()

    def write_table(self, asset: str, partition: str, frame: pl.DataFrame) -> Path:
        return write_atomic(self.path(asset, partition), frame.write_parquet)

    def read_table(self, asset: str, partition: str) -> pl.DataFrame:
        path = self.path(asset, partition)
        if not path.exists():
            raise FileNotFoundError(f"{asset} has no partition {partition} ({path}); materialize it first")
        try:
            return pl.read_parquet(path)
        except pl.exceptions.ComputeError as err:
            raise ValueError(
                f"{asset} partition {partition} ({path}) is not a readable Parquet file; materialize it again"
            ) from err

    def write_json(self, asset: str, partition: str, payload: dict) -> Path:
        text = json.dumps(payload, indent=2, default=str)
        return write_atomic(self.path(asset, partition, ".json"), lambda tmp: tmp.write_text(text))

    def read_json(self, asset: str, partition: str) -> dict:
        path = self.path(asset, partition, ".json")
        if not path.exists():
            raise FileNotFoundError(f"{asset} has no partition {partition} ({path}); materialize it first")
        return json.loads(path.read_text())

    def folder(self, *parts: str) -> Path:
        path = self.base.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def reference_dir(self, version: int) -> Path:
        return self.base / "references" / f"v{version}"


class TripSource(dg.ConfigurableResource):
    """Where a day's raw trips come from; `stage` maps them onto the contract columns (not yet validated)."""

    @property
    def source_name(self) -> str:
        raise NotImplementedError

    def files_for(self, partition: str) -> list[Path]:
        raise NotImplementedError

    def stage(self, partition: str) -> pl.DataFrame:
        raise NotImplementedError


class SyntheticCitySource(TripSource):
    """The simulated city as a trip source. A day missing from `raw_dir` is simulated on first request
    (deterministic for the settings) and only that day is written: a raw partition already on disk is never
    replaced, and a folder whose city was simulated with other settings is refused by name rather than
    extended with a different city. `raw_dir` empty means ETA_HOME/data/synthetic/<scenario>/raw."""

    raw_dir: str = ""
    start: str = SYNTHETIC_START
    seed: int = 7
    scenario: str = "stationary"
    onset_day: int = 30
    trips_per_day: int = 4000
    dirty_fraction: float = 0.01
    # continue the city already in the folder (e.g. the one `eta demo` simulated, with its seed and legs per
    # day) instead of refusing it for other settings; the UI's and daemon's default source does this
    follow_folder: bool = False

    @property
    def source_name(self) -> str:
        return "synthetic"

    @property
    def folder(self) -> Path:
        if self.raw_dir:
            return Path(self.raw_dir)
        return eta_home() / "data" / "synthetic" / self.scenario / "raw"

    def simulate(self, days: int, progress=None) -> None:
        """Write the first `days` days of the city (every day's file is replaced by identical bytes);
        `progress(done, days)` is called after each day."""
        from data_contracts.synthetic.generate import generate_city

        generate_city(
            self.folder,
            days=days,
            start=_day(self.start),
            onset_day=self.onset_day,
            progress=progress,
            **self.settings(),
        )

    def settings(self) -> dict[str, object]:
        """What `generate_city` records in the folder's manifest, and must match to extend it: this
        source's own, or with `follow_folder` the folder's when it has a city already."""
        own = {
            "seed": self.seed,
            "trips_per_day": self.trips_per_day,
            "dirty_fraction": self.dirty_fraction,
            "scenario": self.scenario,
        }
        return (_recorded_settings(self.folder) or own) if self.follow_folder else own

    def files_for(self, partition: str) -> list[Path]:
        day = _day(partition)
        offset = (day - _day(self.start)).days
        if offset < 0:
            raise ValueError(f"the simulated city starts on {self.start}; no trips on {partition}")
        path = self.folder / f"date={partition}" / "trips.parquet"
        if not path.exists():
            self._simulate_missing(offset + 1)
        return [path]

    def _simulate_missing(self, days: int) -> None:
        """Simulate the first `days` days aside and move in only the days the folder lacks."""
        import shutil
        import tempfile

        recorded = _recorded_settings(self.folder)
        if recorded and recorded != self.settings():
            differ = {k: (recorded.get(k), v) for k, v in self.settings().items() if recorded.get(k) != v}
            raise ValueError(
                f"{self.folder} holds a city simulated with other settings (folder, this source): {differ}; "
                "configure the source with the folder's settings or give it another raw_dir"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        aside = Path(tempfile.mkdtemp(prefix=".simulating-", dir=self.folder.parent))
        try:
            SyntheticCitySource(
                **self.settings(), raw_dir=str(aside), start=self.start, onset_day=self.onset_day
            ).simulate(days)
            for made in sorted(p for p in aside.rglob("*") if p.is_file()):
                target = self.folder / made.relative_to(aside)
                if not target.exists():  # never replace a day's file (or the manifest) already there
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(made, target)
        finally:
            shutil.rmtree(aside, ignore_errors=True)

    def stage(self, partition: str) -> pl.DataFrame:
        """The day's raw legs mapped onto the contract columns (with lineage and the raw row)."""
        from data_contracts.sources.synthetic import SyntheticCityAdapter

        adapter = SyntheticCityAdapter()
        return pl.concat([adapter.stage(f) for f in self.files_for(partition)], how="vertical_relaxed")

    def ground_truth(self, days: int) -> dict:
        from data_contracts.synthetic.scenarios import scenario_ground_truth

        return scenario_ground_truth(self.scenario, _day(self.start), days, self.onset_day)


class FolderSource(TripSource):
    """Files of a real source (any registered adapter) cut into days of the source's local calendar.

    Files whose name carries the partition's month (YYYYMM or YYYY-MM, as Citi Bike's monthly files do) are
    the only ones read for that day; otherwise every file is. A row whose departure cannot be parsed has no
    day: it is filed under the earliest day of its file, so the quarantine still shows it.
    """

    adapter: str
    folder: str
    mapping: str | None = None

    @property
    def source_name(self) -> str:
        return self.adapter

    def files_for(self, partition: str) -> list[Path]:
        from data_contracts.sources import get_adapter
        from data_contracts.sources.base import files_for

        every = files_for(get_adapter(self.adapter, self._mapping()), Path(self.folder))
        day = _day(partition)
        tags = (day.strftime("%Y%m"), day.strftime("%Y-%m"))
        dated = [f for f in every if any(tag in f.name for tag in tags)]
        return dated or every

    def _mapping(self) -> Path | None:
        return Path(self.mapping) if self.mapping else None

    def stage(self, partition: str) -> pl.DataFrame:
        from data_contracts.sources import get_adapter

        adapter = get_adapter(self.adapter, self._mapping())
        frames = []
        for path in self.files_for(partition):
            staged = adapter.stage(path)
            zone = staged["tz"].drop_nulls().first() if staged.height else "UTC"
            local_day = pl.col("start_ts").dt.convert_time_zone(zone or "UTC").dt.date()
            staged = staged.with_columns(local_day.alias("_day"))
            staged = staged.with_columns(pl.col("_day").fill_null(staged["_day"].min()))
            frames.append(staged.filter(pl.col("_day") == _day(partition)).drop("_day"))
        return pl.concat(frames, how="vertical_relaxed")


@contextmanager
def _scoped_env(overrides: dict[str, str]) -> Iterator[None]:
    """Set environment variables for one call and restore them after (`ModelRegistry.environment`)."""
    previous = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class ModelRegistry(dg.ConfigurableResource):
    """The MLflow registry of `eta-model`: registers challengers, moves `champion`, loads versions.

    `tracking_uri` empty means the sqlite store under ETA_HOME (models.tracking); `ui_url` is where the
    MLflow UI runs, for the links shown in Dagster (empty: `pipelines.ui.mlflow_ui_url`). Its methods work
    through an `MlflowClient` on this store and leave MLflow's global state and the environment alone
    (`environment()` excepted, for serving code that reads the store from there)."""

    tracking_uri: str = ""
    artifacts_dir: str = ""
    ui_url: str = ""

    @property
    def ui(self) -> str:
        from pipelines.ui import mlflow_ui_url

        return self.ui_url.rstrip("/") or mlflow_ui_url()

    def tracking(self, experiment: str = "") -> Tracking:
        """This store, with `experiment` (default the training one) made sure of: a `models.tracking.Tracking`."""
        from models.tracking import EXPERIMENT, open_tracking

        artifacts = Path(self.artifacts_dir) if self.artifacts_dir else None
        return open_tracking(experiment or EXPERIMENT, self.tracking_uri or None, artifacts)

    def client(self) -> MlflowClient:
        """An `MlflowClient` on this store and its registry."""
        from models.tracking import store_client

        return store_client(self.tracking_uri or None)

    def environment(self):
        """This registry's store as the environment for the duration of a `with` block, for code that reads
        the store from there (`serving.packaging.build_bento`)."""
        overrides = {}
        if self.tracking_uri:
            overrides["MLFLOW_TRACKING_URI"] = self.tracking_uri
        if self.artifacts_dir:
            overrides["ETA_MLFLOW_ARTIFACTS"] = self.artifacts_dir
        return _scoped_env(overrides)

    def register_challenger(
        self, result, config, gate, run_name: str, extra_params: dict, data_source: str | None = None
    ):
        """Log the run and register the version as `challenger`; the gate is judged but nothing promoted.
        `data_source`: where the trips came from, for the run's datasets."""
        from models.registry import log_and_register

        return log_and_register(
            result,
            config,
            gate,
            run_name=run_name,
            extra_params=extra_params,
            promote=False,
            data_source=data_source,
            tracking=self.tracking(),
        )

    def alias(self, name: str) -> int | None:
        """The version an alias (champion, challenger) points at, None when unset."""
        from models.tracking import alias_version

        return alias_version(name, client=self.client())

    def champion_version(self) -> int | None:
        from models.tracking import CHAMPION

        return self.alias(CHAMPION)

    def load_version(self, version: int):
        """The `EtaModel` of a registered version."""
        from mlflow.exceptions import MlflowException

        from models.pyfunc import load_eta_model
        from models.tracking import REGISTERED_MODEL, fluent_store

        tracking = self.tracking()
        try:
            with fluent_store(tracking.uri):  # MLflow loads a pyfunc only through its fluent API
                model, _ = load_eta_model(f"models:/{REGISTERED_MODEL}/{version}")
        except (MlflowException, OSError) as err:
            raise RuntimeError(
                f"{REGISTERED_MODEL} v{version} cannot be loaded ({first_line(err)}): its artifacts may be gone; "
                "move the champion back with `eta rollback`, or retrain (the gate then judges the "
                "challenger on calibration alone)"
            ) from err
        return model

    def promote(self, version: int, decision: dict) -> int | None:
        """Point `champion` at `version`, recording the decision; returns the previous champion."""
        from models.tracking import CHAMPION, alias_version, log_gate_decision, set_alias

        client = self.client()
        previous = alias_version(CHAMPION, client=client)
        log_gate_decision(version, {**decision, "champion_version": previous}, client=client)
        set_alias(CHAMPION, version, client=client)
        return previous

    def experiment_id(self) -> str:
        return self.tracking().experiment_id

    def run_url(self, run_id: str) -> str:
        from models.tracking import ui_link

        return ui_link(self.ui, f"experiments/{self.experiment_id()}/runs/{run_id}")

    def model_url(self, version: int) -> str:
        from models.tracking import REGISTERED_MODEL, ui_link

        return ui_link(self.ui, f"models/{REGISTERED_MODEL}/versions/{version}")

    @staticmethod
    def artifact_url(run_url: str, path: str) -> str:
        """The MLflow UI page of one artifact of the run at `run_url` (images and HTML render there)."""
        page, _, query = run_url.partition("?")
        return f"{page}/artifactPath/{path}" + (f"?{query}" if query else "")

    def artifact_urls(self, run_id: str, folder: str, run_url: str | None = None) -> dict[str, str]:
        """The MLflow UI page of each file the run logged under `folder`, by file stem (`run_url`: the run's
        page when the caller has it already)."""
        artifacts = self.client().list_artifacts(run_id, folder)
        run_url = run_url or self.run_url(run_id)
        return {Path(a.path).stem: self.artifact_url(run_url, a.path) for a in artifacts if not a.is_dir}

    def log_monitoring(
        self,
        partition: str,
        version: int | None,
        metrics: dict,
        artifacts: list[Path],
        kind: str = "monitor",
        tags: dict[str, str] | None = None,
    ) -> str:
        """One run per monitored day and `kind` ("monitor": drift, with the Evidently report; "online": the
        online calibration) in the `eta-monitoring` experiment; returns the run's MLflow UI address."""
        from models.tracking import client_run, log_values, ui_link

        tracking = self.tracking(MONITORING_EXPERIMENT)
        client = tracking.client
        with client_run(tracking, f"{kind}-{partition}") as run:
            run_id = run.info.run_id
            log_values(
                client,
                run_id,
                metrics={k: float(v) for k, v in metrics.items() if v is not None},
                tags={"partition": partition, "champion_version": str(version), **(tags or {})},
            )
            for path in artifacts:
                client.log_artifact(run_id, str(path), "reports")
        return ui_link(self.ui, f"experiments/{tracking.experiment_id}/runs/{run_id}")


class OnlineStore(dg.ConfigurableResource):
    """Where the online calibration states live, read by the service too (`models.online.StateStore`);
    `root` empty means ETA_HOME/online."""

    root: str = ""

    def store(self):
        from models.online import StateStore

        return StateStore(Path(self.root) if self.root else eta_home() / "online")


class DriftDetector(dg.ConfigurableResource):
    """Overrides of the drift and coverage monitor's settings: a field left unset keeps the default of
    `models.drift.DriftSettings`, the one home of their values and meaning. `save_html`: write the daily
    Evidently report."""

    reference_sample: int | None = None
    current_sample: int | None = None
    seed: int | None = None
    numeric_method: str | None = None
    numeric_threshold: float | None = None
    categorical_method: str | None = None
    categorical_threshold: float | None = None
    drift_share: float | None = None
    prediction_threshold: float | None = None
    residual_threshold: float | None = None
    weather_column: str | None = None
    weather_method: str | None = None
    weather_threshold: float | None = None
    levels: list[float] | None = None
    coverage_drop: float | None = None
    segment_resolution: int | None = None
    segment_min_legs: int | None = None
    segment_drop: float | None = None
    segment_slack: float | None = None
    z_threshold: float | None = None
    save_html: bool = True

    def settings(self):
        from dataclasses import fields, replace

        from models.drift import DriftSettings

        given = {f.name: getattr(self, f.name) for f in fields(DriftSettings)}
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if v is not None}
        return replace(DriftSettings(), **overrides)


class DaskCluster(dg.ConfigurableResource):
    """The Dask cluster the training assets train on: `scheduler` (an address such as tcp://host:8786), else
    $ETA_DASK_SCHEDULER, else none: training runs in the run's own process."""

    scheduler: str = ""

    @contextmanager
    def engine(self) -> Iterator[object]:
        """A `models.distributed.DaskEngine` on the cluster while the block runs, or None without one."""
        from models.distributed import dask_engine, scheduler_address

        with dask_engine(scheduler_address(self.scheduler)) as engine:
            yield engine


class BentoPackager(dg.ConfigurableResource):
    """Builds the deployable Bento that carries the registry's champion (`serving.packaging.build_bento`).

    `bentofile` empty means the project's bentofile.yaml; the BentoML stores are BENTOML_HOME, by default
    ETA_HOME/bentoml. A Bento is built once per champion version: later calls return the existing one."""

    bentofile: str = ""

    def build(self, registry: ModelRegistry) -> dict[str, str]:
        from serving.packaging import BENTOFILE, build_bento

        with registry.environment():
            built = build_bento(Path(self.bentofile) if self.bentofile else BENTOFILE)
        return built.as_dict()


def _recorded_settings(folder: Path) -> dict[str, object]:
    """The settings in a simulated city's manifest (`generate_city` writes it), or {} without one."""
    from data_contracts.synthetic.generate import GROUND_TRUTH_FILE

    manifest = folder / GROUND_TRUTH_FILE
    return json.loads(manifest.read_text())["parameters"] if manifest.exists() else {}
