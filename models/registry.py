"""Log a training result to MLflow, register it as the challenger, and run the promotion gate."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from data_contracts.safe_io import first_line
from models.gate import GateConfig, GateDecision, promotion_decision
from models.metrics import summary_metrics
from models.run_record import (
    describe_version,
    run_description,
    run_metrics,
    save_plots,
    version_description,
    window_inputs,
)
from models.tracking import (
    CHALLENGER,
    CHAMPION,
    REGISTERED_MODEL,
    Tracking,
    alias_version,
    client_run,
    configure,
    fluent_store,
    log_gate_decision,
    log_values,
    set_alias,
)
from models.train import TrainConfig, TrainingResult

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass
class RegisteredRun:
    run_id: str
    version: int
    model_uri: str
    decision: GateDecision
    champion_version: int | None

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "version": self.version,
            "model_uri": self.model_uri,
            "decision": self.decision.as_dict(),
            "champion_version": self.champion_version,
        }


MIN_COMPARISON_LEGS = 100  # fewer unseen legs than this: the challenger is judged on calibration alone


@dataclass
class Comparison:
    """The champion and the challenger on the challenger's test days whose labels the champion never used
    (a champion refit on the newest days has calibrated on most of them)."""

    window: str
    champion: dict[str, float] | None = None  # None: no such day (see `note`)
    challenger: dict[str, float] | None = None
    note: str | None = None


def champion_comparison(result: TrainingResult, tracking: Tracking | None = None) -> Comparison | None:
    """The current champion and the challenger's evaluated model, scored on the same unseen test legs
    (the champion of `tracking`'s store, default `configure()`'s)."""
    tracking = tracking or configure()
    version = alias_version(CHAMPION, client=tracking.client)
    if version is None:
        return None
    from models.pyfunc import load_eta_model
    from models.train import split_key

    with fluent_store(tracking.uri):  # MLflow loads a pyfunc only through its fluent API
        champion, _ = load_eta_model(f"models:/{REGISTERED_MODEL}@{CHAMPION}")
    legs, last = result.test_legs, champion.meta.get("last_labelled_day")
    if last is not None and champion.meta.get("windows", {}).get("split_by") == result.windows.key:
        days = legs.select(split_key(legs, result.windows.key)).to_series()
        later = days.cast(pl.String) > str(last) if result.windows.key == "date" else days > int(last)
        legs = legs.filter(later)
    window = f"test legs after day {last}" if last is not None else "the test window"
    if legs.height < MIN_COMPARISON_LEGS:
        return Comparison(
            window,
            note=f"champion v{version} has used the labels of the test days up to {last} "
            f"({legs.height} legs after them); judged on calibration alone",
        )
    y = legs["duration_s"].to_numpy()
    return Comparison(
        window,
        champion=summary_metrics(y, champion.predict_quantiles(legs), champion.quantiles),
        challenger=summary_metrics(y, result.evaluated.predict_quantiles(legs), result.evaluated.quantiles),
    )


def run_params(result: TrainingResult, config: TrainConfig, extra_params: dict | None = None) -> dict:
    """The run's parameters: the config, seed, spec version, data hash, windows, refit days and row counts."""
    return {
        "model_kind": config.model_kind,
        "quantiles": ",".join(str(q) for q in config.quantiles),
        "split": ",".join(str(s) for s in config.split),
        "input_dropout": config.input_dropout,
        "refit": config.refit,
        **{f"calibration_{k}": v for k, v in asdict(config.calibration).items()},
        "seed": config.seed,
        "feature_spec_version": config.spec.version,
        "data_hash": result.data_hash,
        **{f"boosting_{k}": v for k, v in asdict(config.params).items()},
        **{f"window_{k}": v for k, v in result.windows.as_dict().items()},
        **{f"refit_{k}": v for k, v in result.refit.items()},
        **{f"rows_{k}": v for k, v in result.rows.items()},
        **(extra_params or {}),
    }


def _log_run_record(
    client: MlflowClient,
    run_id: str,
    result: TrainingResult,
    config: TrainConfig,
    params: dict,
    inputs: list,
    quarantine: pl.DataFrame | None,
    folder: Path,
) -> None:
    """Everything of the run but the model: params, metrics, datasets, baselines, segments, plots, spec,
    warnings and the quarantined rows."""
    if quarantine is not None:
        params = {**params, "rows_quarantined": quarantine.height}
    log_values(client, run_id, params=params, metrics=run_metrics(result))
    client.log_inputs(run_id, datasets=inputs)
    client.log_dict(run_id, result.beats_baselines(), "baselines/beats_baselines.json")
    for name, table in result.segments.items():
        client.log_table(run_id, table.to_pandas(), f"segments/coverage_by_{name}.json")
    for png in save_plots(result, folder):
        client.log_artifact(run_id, str(png), "plots")
    client.log_text(run_id, config.spec.to_json(), "feature_spec.json")
    if result.warnings:  # e.g. a calibration snapshot much thinner than the one served
        client.log_text(run_id, "\n".join(result.warnings) + "\n", "warnings.txt")
    client.set_tag(run_id, "warnings", str(len(result.warnings)))
    if quarantine is not None and quarantine.height:
        quarantine.write_parquet(folder / "quarantine.parquet")
        client.log_artifact(run_id, str(folder / "quarantine.parquet"), "data")


def _log_model(
    tracking: Tracking, run_id: str, result: TrainingResult, config: TrainConfig, folder: Path
) -> int:
    """Log the model as code into the run and register it; returns the new version."""
    import mlflow

    from models.pyfunc import ARTIFACT_KEY, MODEL_CODE, PIP_REQUIREMENTS, input_example, signature

    bundle = result.model.save(folder / "eta_model")
    # MLflow logs a model only through its fluent API, into the active run and the global registry
    with fluent_store(tracking.uri), mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=MODEL_CODE,
            artifacts={ARTIFACT_KEY: str(bundle)},
            pip_requirements=PIP_REQUIREMENTS,
            signature=signature(config.quantiles),
            input_example=input_example(result.test_legs),
            registered_model_name=REGISTERED_MODEL,
        )
    return int(info.registered_model_version)


def _judge(
    result: TrainingResult,
    gate: GateConfig,
    comparison: Comparison | None,
    champion_version: int | None,
    unloadable: str | None,
) -> GateDecision:
    """The gate's decision on the challenger, with why the champion could not be compared in front."""
    usable = comparison if champion_version is not None and unloadable is None else None
    decision = promotion_decision(
        result.metrics,
        usable.champion if usable else None,
        gate,
        challenger_on_window=usable.challenger if usable else None,
        window=usable.window if usable and usable.champion else None,
    )
    for note in (unloadable, usable.note if usable else None):
        if note:
            decision.reasons.insert(0, note)
    return decision


def log_and_register(
    result: TrainingResult,
    config: TrainConfig,
    gate: GateConfig = GateConfig(),
    run_name: str | None = None,
    extra_params: dict | None = None,
    comparison: Comparison | None = None,
    promote: bool = True,
    quarantine: pl.DataFrame | None = None,
    data_source: str | None = None,
    tracking: Tracking | None = None,
) -> RegisteredRun:
    """One MLflow run with params, windows, data hash, spec, metrics, plots and the model; registered as
    challenger; promoted to champion if the gate says so. Every decision is logged.

    With `promote=False` the gate is judged and its opinion logged in the run, but the champion alias and
    the gate log are left to the caller (the Dagster pipeline promotes in its own step, after a blocking
    calibration check). `quarantine`, the input rows the contract rejected, is logged with the run as
    data/quarantine.parquet (with their reasons), so a run's data is accounted for in one place.

    The run lists its three windows as datasets (`window_inputs`; `data_source` is the path or URI the trips
    were read from, else they are named by `extra_params["source"]`), and the run, the version and the
    registered model carry descriptions. `tracking` is the store and experiment (default `configure()`)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

    tracking = tracking or configure()
    client = tracking.client
    source_name = str((extra_params or {}).get("source") or "trips")
    described = data_source or source_name
    params = run_params(result, config, extra_params)
    # the champion is scored before anything is registered: a failure here leaves no orphan version
    champion_version = alias_version(CHAMPION, client=client)
    unloadable = None
    if champion_version is not None and comparison is None:
        try:
            comparison = champion_comparison(result, tracking)
        except (MlflowException, OSError) as err:  # its files gone, say: it can neither serve nor compare
            unloadable = f"champion v{champion_version} cannot be loaded ({first_line(err)}); judged on calibration alone"
    with client_run(tracking, run_name) as run, tempfile.TemporaryDirectory() as tmp:
        run_id, folder = run.info.run_id, Path(tmp)
        inputs = window_inputs(result, source_name, data_source)
        _log_run_record(client, run_id, result, config, params, inputs, quarantine, folder)
        version = _log_model(tracking, run_id, result, config, folder)
        set_alias(CHALLENGER, version, client=client)
        decision = _judge(result, gate, comparison, champion_version, unloadable)
        client.log_dict(run_id, decision.as_dict(), "gate_decision.json")
        note = run_description(result, config, described, version, decision)
        tags = {"gate_promote": str(decision.promote).lower(), "registered_version": str(version)}
        log_values(client, run_id, tags={**tags, MLFLOW_RUN_NOTE: note})
    describe_version(client, version, version_description(result, config, described, run_id, decision))
    if promote:
        log_gate_decision(
            version, {**decision.as_dict(), "champion_version": champion_version}, client=client
        )
        if decision.promote:
            set_alias(CHAMPION, version, client=client)
    return RegisteredRun(run_id, version, f"models:/{REGISTERED_MODEL}/{version}", decision, champion_version)


def rollback(to_version: int | None = None, client: MlflowClient | None = None) -> dict[str, object]:
    """Move the champion alias back: to `to_version`, or to the previous champion in the gate log (in
    `client`'s registry, default the configured store's)."""
    from models.tracking import eta_home

    current = alias_version(CHAMPION, client=client)
    if to_version is None:
        log = eta_home() / "registry" / "gate_decisions.jsonl"
        decisions = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        promoted = [d["version"] for d in decisions if d["promote"]]
        earlier = [v for v in promoted if current is None or v < current]
        if not earlier:
            raise ValueError(f"no earlier promoted version to roll back to from champion v{current}")
        to_version = earlier[-1]
    set_alias(CHAMPION, to_version, client=client)
    return {"from_version": current, "to_version": to_version}
