"""`eta demo`: the real Dagster jobs on the simulated city, in process, against the instance under ETA_HOME
(so every run shows up in `eta ui`). Shows progress inside each step, then what ran and where everything is."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import date, timedelta

from data_contracts.home import eta_home
from pipelines.assets_model import CANDIDATE, EVALUATION, PROMOTION
from pipelines.assets_monitor import DRIFT, PERFORMANCE, SERVED
from pipelines.automation import QUIET_LOGS, TRIGGER_TAG
from pipelines.resources import SYNTHETIC_START, SyntheticCitySource, Warehouse
from pipelines.ui import DAGSTER_PORT, mlflow_ui_url

# the loggers whose INFO lines say what training is doing (phases, boosters)
TRAINING_LOGGERS = ("models.train", "models.quantile")


def _progress(console):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
    )


class _ToTask(logging.Handler):
    """Shows each log line as the description of a progress task."""

    def __init__(self, progress, task) -> None:
        super().__init__(logging.INFO)
        self.progress, self.task = progress, task

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.update(self.task, description=record.getMessage())


@contextlib.contextmanager
def _training_status(console, title: str):
    """A spinner whose text is the latest line of the training loggers, with the time elapsed."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task(title, total=None)
        handler = _ToTask(bar, task)
        loggers = [logging.getLogger(name) for name in TRAINING_LOGGERS]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.INFO)
            logger.addHandler(handler)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.removeHandler(handler)
                logger.setLevel(level)
            bar.update(task, description=f"{title}: done")


def _why(drift: dict, performance: dict, drift_share: float) -> str:
    """The monitors' reason for the day's retrain? answer, in a few words."""
    reasons = [*drift.get("reasons", []), *performance.get("reasons", [])]
    if reasons:
        return "; ".join(reasons)
    share = drift.get("drifted_share")
    if share is None:
        return "not monitored"
    return f"{share:.0%} of inputs drifted (< {drift_share:.0%}), coverage held"


def _check_summary(result) -> tuple[int, int]:
    evaluations = result.get_asset_check_evaluations()
    return sum(e.passed for e in evaluations), len(evaluations)


def run_demo(days: int, seed: int, trips_per_day: int, monitor_days: int, console) -> dict:
    """Simulate `days` of the city, ingest every day, train on the window before the last `monitor_days`,
    serve and monitor those, and run the drift sensor; prints each step and where everything is."""
    from pipelines.definitions import build_definitions, simulated_end
    from pipelines.instance import dagster_instance

    began = time.perf_counter()
    home = eta_home()
    source = SyntheticCitySource(seed=seed, trips_per_day=trips_per_day)
    warehouse = Warehouse()
    train_index = days - monitor_days - 1
    window = min(28, train_index + 1)
    first = date.fromisoformat(SYNTHETIC_START)
    keys = [(first + timedelta(days=i)).isoformat() for i in range(days)]

    console.rule(f"1/5 simulate {days} days of the city (seed {seed}, {trips_per_day} legs/day)")
    _simulate(source, days, console)
    # the partitions end where the simulated city does, as in the UI's Definitions
    end = simulated_end(source)
    defs = build_definitions(source=source, warehouse=warehouse, window_days=window, end=end)
    ingest = defs.resolve_job_def("ingest_job")
    monitoring = defs.resolve_job_def("daily_monitoring_job")
    retraining = defs.resolve_job_def("retraining_job")
    drift_share = defs.resources["drift"].settings().drift_share

    with dagster_instance() as instance:
        console.rule(f"2/5 ingest, validate and featurize {days} daily partitions (one Dagster run each)")
        _ingest(ingest, keys, instance, console)
        train_day = keys[train_index]
        console.rule(f"3/5 train on the {window} days ending {train_day}, evaluate, promote")
        candidate = _train(retraining, train_day, instance, warehouse, console)
        console.rule(f"4/5 serve and monitor the {monitor_days} days after training")
        _monitor(monitoring, keys[train_index + 1 :], instance, warehouse, drift_share, console)
        console.rule("5/5 the drift sensor")
        requests = _drift_sensor(defs, retraining, instance, console)
        dagster_home = instance.root_directory

    console.rule(f"done in {time.perf_counter() - began:.0f} s; where things are")
    _where_things_are(home, dagster_home, warehouse, console)
    return {"candidate": candidate, "requests": [r.partition_key for r in requests]}


def _simulate(source: SyntheticCitySource, days: int, console) -> None:
    """Step 1: the city's raw partitions, with a progress bar."""
    with _progress(console) as bar:
        task = bar.add_task("days simulated", total=days)
        source.simulate(days, progress=lambda done, _total: bar.update(task, completed=done))
    console.print(f"raw partitions in {source.folder}")


def _ingest(ingest, keys: list[str], instance, console) -> None:
    """Step 2: one `ingest_job` run per day; prints the legs in, valid and quarantined, and the checks."""
    rows_in = valid = quarantined = passed = checks = 0
    with _progress(console) as bar:
        task = bar.add_task("days ingested", total=len(keys))
        for key in keys:
            result = ingest.execute_in_process(partition_key=key, instance=instance, run_config=QUIET_LOGS)
            bar.advance(task)
            ok, total = _check_summary(result)
            passed, checks = passed + ok, checks + total
            for event in result.get_asset_materialization_events():
                materialization = event.materialization
                count = materialization.metadata.get("dagster/row_count")
                name = materialization.asset_key.to_user_string()
                if name == "raw_trips":
                    rows_in += count.value
                elif name == "validated_trips":
                    valid += count.value
                elif name == "quarantined_trips":
                    quarantined += count.value
    console.print(
        f"{rows_in} legs in, {valid} valid, {quarantined} quarantined; asset checks passed {passed}/{checks}"
    )


def _train(retraining, train_day: str, instance, warehouse: Warehouse, console) -> dict:
    """Step 3: `retraining_job` for the training day; prints the candidate, the gate and the champion, and
    returns the candidate's record."""
    with _training_status(console, "training"):
        result = retraining.execute_in_process(
            partition_key=train_day,
            instance=instance,
            run_config=QUIET_LOGS,
            tags={TRIGGER_TAG: "demo"},
            raise_on_error=False,
        )
    candidate = warehouse.read_json(CANDIDATE, train_day)
    evaluation = warehouse.read_json(EVALUATION, train_day)
    promotion = warehouse.read_json(PROMOTION, train_day) if result.success else {"promoted": False}
    m = candidate["metrics"]
    console.print(
        f"eta-model v{candidate['version']} (challenger): MAE {m['mae_s']:.0f} s, 80% coverage "
        f"{m['coverage_80']:.3f}, 90% coverage {m['coverage_90']:.3f} on {candidate['windows']['test_days']}"
    )
    console.print(
        f"calibration check {'passed' if evaluation['calibrated'] else 'FAILED (blocking)'}; gate: "
        + "; ".join(evaluation["reasons"])
    )
    console.print(
        f"champion: v{promotion.get('champion_version')}"
        + (" (promoted now)" if promotion.get("promoted") else " (unchanged)")
    )
    console.print(f"MLflow run: {candidate['run_url']}")
    return candidate


def _monitor(monitoring, served_days: list[str], instance, warehouse: Warehouse, drift_share: float, console):
    """Step 4: one `daily_monitoring_job` run per served day, then a table of what the monitors said."""
    from rich.table import Table

    table = Table()
    for column in ("day", "champion", "legs", "80% cov", "90% cov", "retrain?"):
        table.add_column(column, no_wrap=True)
    table.add_column("why")
    with _progress(console) as bar:
        task = bar.add_task("days served and monitored", total=len(served_days))
        for key in served_days:
            monitoring.execute_in_process(partition_key=key, instance=instance, run_config=QUIET_LOGS)
            bar.advance(task)
    for key in served_days:
        served = warehouse.read_json(SERVED, key)
        drift = warehouse.read_json(DRIFT, key)
        performance = warehouse.read_json(PERFORMANCE, key)
        coverage = performance.get("coverage", {})
        table.add_row(
            key,
            f"v{served.get('champion_version')}",
            str(performance.get("rows", 0)),
            f"{coverage.get('80', float('nan')):.3f}",
            f"{coverage.get('90', float('nan')):.3f}",
            "yes" if drift.get("trigger") or performance.get("trigger") else "no",
            _why(drift, performance, drift_share),
        )
    console.print(table)


def _drift_sensor(defs, retraining, instance, console) -> list:
    """Step 5: one tick of the drift sensor, and a retraining run for each day it requests (returned)."""
    import dagster as dg

    sensor = defs.resolve_sensor_def("drift_retraining_sensor")
    evaluation = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    requests = list(evaluation.run_requests or [])
    if not requests:
        console.print(f"no retraining requested: {evaluation.skip_reason.skip_message}")
    for request in requests:
        console.print(f"drift event on {request.partition_key}: running retraining_job for it")
        with _training_status(console, f"retraining for {request.partition_key}"):
            retraining.execute_in_process(
                partition_key=request.partition_key,
                instance=instance,
                tags=request.tags,
                run_config=QUIET_LOGS,
                raise_on_error=False,
            )
    return requests


def _where_things_are(home, dagster_home, warehouse: Warehouse, console) -> None:
    from models.tracking import ui_link

    console.print(f"state folder (ETA_HOME)   {home}")
    console.print(f"Dagster instance          {dagster_home}  (runs, events, schedules; dagster.yaml copied)")
    console.print(f"pipeline tables, reports  {warehouse.base}")
    console.print(f"Evidently reports         {warehouse.base / 'reports' / DRIFT}")
    console.print(f"MLflow store              {home / 'mlflow'}")
    console.print(
        f"browse it all:            eta ui   (Dagster http://127.0.0.1:{DAGSTER_PORT}, MLflow "
        f"{ui_link(mlflow_ui_url(), 'experiments')})"
    )
