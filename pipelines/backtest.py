"""Replay a source day by day through the real Dagster jobs (in process, against a Dagster instance, an
MLflow store and a warehouse of the backtest's own under ETA_HOME/backtests/...).

Per day D: `daily_monitoring_job` ingests D, serves it with the morning's champion and runs the monitors;
then, by strategy, nothing (`off`), `retraining_job` for D (`nightly`), or whatever the real drift sensor
requests (`on`). The first model is trained after the warm-up window, and again every night until one passes
the gate, whatever the strategy (there is nothing to serve before). What is measured per day comes from
the assets' own outputs; the judging is `models.backtest`.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from models.backtest import (
    BacktestDay,
    alarms,
    day_scores,
    day_table,
    district_mask,
    recovery,
    weekly_coverage,
)
from pipelines.assets_ingest import VALID
from pipelines.assets_model import EVALUATION, PROMOTION
from pipelines.assets_monitor import DRIFT, PERFORMANCE, SERVED, served_day
from pipelines.automation import INGEST_KEYS, QUIET_LOGS, TRIGGER_TAG
from pipelines.resources import DriftDetector, ModelRegistry, OnlineStore, TripSource, Warehouse

if TYPE_CHECKING:
    import dagster as dg

# off: the champion as trained; nightly: retrain every night; on: retrain when the drift sensor asks;
# online: no retraining, windows recalibrated every day on the last days' completed legs (models.online);
# online+on: both online calibration and drift-triggered retraining
STRATEGIES = ("off", "nightly", "on", "online", "online+on")
# Backtest boosting: fewer rounds than the production default, so that a nightly strategy's ~30 retrainings
# fit in the time of a coffee on two cores (calibration does not depend on it; accuracy slightly).
FAST_TRAINING = {"learning_rate": 0.1, "num_leaves": 31, "median_rounds": 300, "spread_rounds": 120}


@dataclass
class BacktestPlan:
    strategy: str
    days: int
    home: Path  # this strategy's own state (instance, MLflow store, warehouse)
    source: TripSource
    start: str
    timezone: str
    window_days: int = 28
    onset_index: int | None = None
    district_cells: list[str] = field(default_factory=list)
    district_resolution: int = 8
    active_days: list[int] = field(default_factory=list)
    training: dict = field(default_factory=lambda: dict(FAST_TRAINING))
    drift: DriftDetector = field(default_factory=DriftDetector)


def _partition(start: str, index: int) -> str:
    return (date.fromisoformat(start) + timedelta(days=index)).isoformat()


def _run_config(plan: BacktestPlan) -> dict:
    return {
        **QUIET_LOGS,
        "ops": {
            "training_set": {"config": {"window_days": plan.window_days}},
            "candidate_model": {"config": plan.training},
            "model_evaluation": {"config": plan.training},
        },
    }


def _served_scores(warehouse: Warehouse, day: str, plan: BacktestPlan, store=None) -> dict:
    """The day's scores of what was served: the champion's windows, adjusted by the online state of the
    morning when `store` (a `models.online.StateStore`) is given."""
    served = warehouse.read_table(SERVED, day)
    legs = warehouse.read_table(VALID, day).select(
        "trip_id", "origin_lat", "origin_lng", "dest_lat", "dest_lng"
    )
    legs = served.select("trip_id").join(legs, on="trip_id", how="left", maintain_order="left")
    qcols = sorted(
        (c for c in served.columns if c.startswith("q") and c[1:].isdigit()), key=lambda c: int(c[1:])
    )
    quantiles = [int(c[1:]) / 100 for c in qcols]
    mask = district_mask(legs, plan.district_cells, plan.district_resolution)
    q = served.select(qcols).to_numpy()
    if store is not None:
        from models import online
        from models.tracking import REGISTERED_MODEL

        version = warehouse.read_json(SERVED, day)["champion_version"]
        state = store.latest(REGISTERED_MODEL, version)
        if state is not None:
            q = online.apply(online.learned_before(state, day), q, served_day(day, served).keys)
    return day_scores(served["duration_s"].to_numpy(), q, quantiles, mask)


def _reasons(warehouse: Warehouse, day: str) -> tuple[bool, bool, str]:
    drift = warehouse.read_json(DRIFT, day) if warehouse.has(DRIFT, day, ".json") else {}
    performance = warehouse.read_json(PERFORMANCE, day) if warehouse.has(PERFORMANCE, day, ".json") else {}
    reasons = [*drift.get("reasons", []), *performance.get("reasons", [])]
    return bool(drift.get("trigger")), bool(performance.get("trigger")), "; ".join(reasons)


def replay(plan: BacktestPlan, progress: Callable[[str], None] | None = None) -> list[BacktestDay]:
    """Run the plan through Dagster; one `BacktestDay` per day after the warm-up."""
    from pipelines.definitions import build_definitions
    from pipelines.instance import dagster_instance

    if plan.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {plan.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if plan.home.exists():
        shutil.rmtree(plan.home)  # a backtest starts from nothing: no champion, no runs
    warehouse = Warehouse(root=str(plan.home / "pipeline"))
    registry = ModelRegistry(
        tracking_uri=f"sqlite:///{plan.home / 'mlflow' / 'mlflow.db'}?timeout=60",
        artifacts_dir=str(plan.home / "mlflow" / "artifacts"),
    )
    (plan.home / "mlflow").mkdir(parents=True, exist_ok=True)
    online = OnlineStore(root=str(plan.home / "online"))
    defs = build_definitions(
        plan.source,
        plan.start,
        plan.timezone,
        warehouse=warehouse,
        registry=registry,
        drift=plan.drift,
        online=online,
        window_days=plan.window_days,
    )
    records: list[BacktestDay] = []
    with dagster_instance(plan.home) as instance:
        run = _Replay(plan, defs, instance, warehouse, online, progress or (lambda _: None))
        for index in range(plan.days):
            day = _partition(plan.start, index)
            if index < plan.window_days:
                run.warm_up(day, index)
            else:
                records.append(run.replay_day(day, index))
    return records


class _Replay:
    """One plan's replay against its instance: the day's runs, the retrainings, and what is read back."""

    def __init__(
        self,
        plan: BacktestPlan,
        defs: dg.Definitions,
        instance: dg.DagsterInstance,
        warehouse: Warehouse,
        online: OnlineStore,
        say: Callable[[str], None],
    ) -> None:
        self.plan, self.defs, self.instance, self.say = plan, defs, instance, say
        self.warehouse, self.online = warehouse, online
        self.monitoring = defs.resolve_job_def("daily_monitoring_job")
        self.retraining = defs.resolve_job_def("retraining_job")
        self.sensor = defs.resolve_sensor_def("drift_retraining_sensor")
        self.config = _run_config(plan)
        self.cursor = None  # the drift sensor's, from one tick to the next

    def warm_up(self, day: str, index: int) -> None:
        """A day of the warm-up window: ingested only; the first model is trained after its last day."""
        import dagster as dg

        self.monitoring.execute_in_process(
            partition_key=day,
            instance=self.instance,
            asset_selection=[dg.AssetKey(k) for k in INGEST_KEYS],
            run_config=QUIET_LOGS,
        )
        if index == self.plan.window_days - 1:
            self.retrain(day, "initial")

    def replay_day(self, day: str, index: int) -> BacktestDay:
        """A day after the warm-up: ingested, served, monitored, scored; then retrained as the strategy says."""
        plan, warehouse = self.plan, self.warehouse
        began = time.perf_counter()
        self.monitoring.execute_in_process(partition_key=day, instance=self.instance, run_config=QUIET_LOGS)
        record = BacktestDay(plan.strategy, day, index, index in plan.active_days)
        served = warehouse.read_json(SERVED, day)
        record.champion_version = served.get("champion_version")
        if served.get("served"):
            state = self.online.store() if plan.strategy.startswith("online") else None
            for key, value in _served_scores(warehouse, day, plan, state).items():
                setattr(record, key, value)
        record.drift_flag, record.coverage_flag, record.reasons = _reasons(warehouse, day)
        record.trigger = record.drift_flag or record.coverage_flag
        for partition, trigger, recipe in self.requests(day, served=record.champion_version is not None):
            self.retrain(partition, trigger, record, recipe)
        record.seconds = time.perf_counter() - began
        self.say(
            f"{day} (day {index}): v{record.champion_version} cov80 {record.coverage_80:.3f} "
            f"district {record.district_coverage_80:.3f} trigger={record.trigger}"
        )
        return record

    def requests(self, day: str, served: bool = True) -> list[tuple[str, str, dict | None]]:
        """The retrainings the strategy asks for after `day`: (partition, trigger, the sensor's recipe).
        Until a first model passes the gate there is nothing to serve, and every strategy trains again."""
        import dagster as dg

        if not served:
            return [(day, "initial", None)]
        if self.plan.strategy == "nightly":
            return [(day, "nightly", None)]
        if self.plan.strategy not in ("on", "online+on"):
            return []
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, definitions=self.defs)
        result = self.sensor(context)
        self.cursor = result.cursor
        return [
            (
                r.partition_key,
                "drift",
                (r.run_config or {}).get("ops", {}).get("candidate_model", {}).get("config"),
            )
            for r in result.run_requests
        ]

    def retrain(
        self, day: str, trigger: str, record: BacktestDay | None = None, recipe: dict | None = None
    ) -> None:
        """`retraining_job` for `day`; what it did goes into `record` (the day being replayed) when given."""
        plan, config, warehouse = self.plan, self.config, self.warehouse
        run_config = config
        if recipe:  # the sensor's overrides on top of the backtest's own training settings
            training = {**plan.training, **recipe}
            ops = {
                **config["ops"],
                "candidate_model": {"config": training},
                "model_evaluation": {"config": training},
            }
            run_config = {**config, "ops": ops}
        result = self.retraining.execute_in_process(
            partition_key=day,
            instance=self.instance,
            run_config=run_config,
            tags={TRIGGER_TAG: trigger},
            raise_on_error=False,
        )
        evaluation = warehouse.read_json(EVALUATION, day) if warehouse.has(EVALUATION, day, ".json") else {}
        promoted = warehouse.has(PROMOTION, day, ".json") and warehouse.read_json(PROMOTION, day)["promoted"]
        blocked = not result.success
        self.say(
            f"{day}: retrained ({trigger}) -> v{evaluation.get('version')}, "
            f"{'promoted' if promoted else 'blocked' if blocked else 'not promoted'}"
        )
        if record is not None:
            decision = evaluation.get("decision", {})
            record.retrained, record.promoted, record.blocked = True, bool(promoted), blocked
            record.candidate_version = evaluation.get("version")
            compared = decision.get("challenger_on_window") or decision.get("challenger") or {}
            record.candidate_pinball = compared.get("pinball_mean", math.nan)
            record.champion_pinball = (decision.get("champion") or {}).get("pinball_mean", math.nan)


def write_outputs(folder: Path, strategy: str, records: list[BacktestDay], summary: dict) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table = day_table(records)
    csv = folder / f"days_{strategy}.csv"
    table.write_csv(csv)
    summary_path = folder / f"summary_{strategy}.json"
    summary_path.write_text(json.dumps(summary, indent=2, default=str))
    return {"table": csv, "summary": summary_path}


def load_strategies(folder: Path) -> dict[str, list[BacktestDay]]:
    """Every strategy's per-day table already written in `folder` (to plot them together)."""
    out = {}
    for strategy in STRATEGIES:
        path = folder / f"days_{strategy}.csv"
        if path.exists():
            rows = pl.read_csv(path, infer_schema_length=None).to_dicts()
            out[strategy] = [BacktestDay(**row) for row in rows]
    return out


def judge(records: list[BacktestDay], plan: BacktestPlan) -> dict:
    """Alarms against the ground truth and (with a drifted district) the recovery after the onset."""
    summary = {"strategy": plan.strategy, "alarms": alarms(records, plan.onset_index).as_dict()}
    if plan.onset_index is not None and plan.district_cells:
        # online calibration learns each day as it completes: it is judged from the day after the onset
        within = 1 if plan.strategy.startswith("online") else 3
        summary["recovery"] = recovery(records, plan.onset_index, within_days=within).as_dict()
    served = [r for r in records if r.n]
    summary["retrainings"] = sum(r.retrained for r in records)
    summary["promotions"] = sum(r.promoted for r in records)
    summary["blocked"] = sum(r.blocked for r in records)
    # the gate compares both models on the candidate's test window: a promotion of a worse model would show here
    summary["promoted_worse"] = sum(r.promoted and r.candidate_pinball > r.champion_pinball for r in records)
    summary["days_served"] = len(served)
    summary["mean_coverage_80"] = sum(r.coverage_80 for r in served) / len(served) if served else None
    summary["mean_width_80_s"] = (
        sum(r.width_80_s * r.n for r in served) / sum(r.n for r in served) if served else None
    )
    summary.update(weekly_coverage(served))
    if plan.onset_index is not None:
        storm = [r for r in served if r.scenario_active and r.day_index > plan.onset_index]
        summary["worst_day_gap_after_onset"] = max((abs(r.coverage_80 - 0.8) for r in storm), default=None)
    return summary


def synthetic_plan(
    strategy: str,
    scenario: str,
    days: int,
    folder: Path,
    trips_per_day: int = 4000,
    seed: int = 7,
    onset_day: int = 30,
    window_days: int = 28,
    training: dict | None = None,
    drift: DriftDetector | None = None,
) -> BacktestPlan:
    """A backtest of the simulated city; the raw days are shared by the strategies of one folder."""
    from pipelines.definitions import SYNTHETIC_TIMEZONE
    from pipelines.resources import SYNTHETIC_START, SyntheticCitySource

    source = SyntheticCitySource(
        raw_dir=str(folder / "raw"),
        scenario=scenario,
        seed=seed,
        onset_day=onset_day,
        trips_per_day=trips_per_day,
    )
    truth = source.ground_truth(days)
    district = truth["affected_h3_cells"] if truth["effects"]["district"] else []
    return BacktestPlan(
        strategy=strategy,
        days=days,
        home=folder / strategy,
        source=source,
        start=SYNTHETIC_START,
        timezone=SYNTHETIC_TIMEZONE,
        window_days=window_days,
        onset_index=truth["onset_day"],
        district_cells=district,
        district_resolution=truth["h3_resolution"],
        active_days=truth["active_days"],
        training=training or dict(FAST_TRAINING),
        drift=drift or DriftDetector(),
    )


def citibike_plan(strategy: str, days: int, folder: Path, start: str, window_days: int = 28) -> BacktestPlan:
    """A backtest of the Citi Bike Jersey City months beside the checkout (no ground truth: alarms only)."""
    from data_contracts.home import shared_data_dir
    from pipelines.resources import FolderSource

    data = shared_data_dir() / "citibike_jersey_city"
    if not data.is_dir():
        raise FileNotFoundError(f"no Citi Bike data at {data}")
    return BacktestPlan(
        strategy=strategy,
        days=days,
        home=folder / strategy,
        source=FolderSource(adapter="citibike", folder=str(data)),
        start=start,
        timezone="America/New_York",
        window_days=window_days,
    )


def run_plans(plans: list[BacktestPlan], folder: Path, progress=None) -> dict:
    """Replay each plan, write its table and summary, and the plot of every strategy in `folder`."""
    from models.backtest import coverage_over_time_plot

    summaries = {}
    for plan in plans:
        if isinstance(plan.source, _synthetic_type()):
            plan.source.simulate(plan.days)  # every day on disk before the replay starts
        began = time.perf_counter()
        records = replay(plan, progress)
        summary = {**judge(records, plan), "seconds": round(time.perf_counter() - began, 1)}
        summary["outputs"] = {
            k: str(v) for k, v in write_outputs(folder, plan.strategy, records, summary).items()
        }
        summaries[plan.strategy] = summary
    first = plans[0]
    plot = coverage_over_time_plot(
        load_strategies(folder),
        folder / "coverage_over_time.png",
        first.onset_index,
        title=folder.name,
    )
    return {"folder": str(folder), "plot": str(plot), "strategies": summaries}


def _synthetic_type():
    from pipelines.resources import SyntheticCitySource

    return SyntheticCitySource
