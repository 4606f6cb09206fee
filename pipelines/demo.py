"""`eta demo`: the real Dagster jobs on the simulated city, in process, against the instance under ETA_HOME
(so every run shows up in `eta ui`). Prints what ran and where everything is."""

from __future__ import annotations

import time
from datetime import date, timedelta

from data_contracts.home import eta_home
from pipelines.assets_model import CANDIDATE, EVALUATION, PROMOTION
from pipelines.assets_monitor import DRIFT, PERFORMANCE, SERVED
from pipelines.automation import INGEST_KEYS, QUIET_LOGS, TRIGGER_TAG
from pipelines.resources import SYNTHETIC_START, SyntheticCitySource, Warehouse


def _check_summary(result) -> tuple[int, int]:
    evaluations = result.get_asset_check_evaluations()
    return sum(e.passed for e in evaluations), len(evaluations)


def run_demo(days: int, seed: int, trips_per_day: int, monitor_days: int, console) -> dict:
    import dagster as dg
    from rich.table import Table

    from pipelines.definitions import build_definitions
    from pipelines.instance import dagster_instance

    began = time.perf_counter()
    home = eta_home()
    source = SyntheticCitySource(seed=seed, trips_per_day=trips_per_day)
    warehouse = Warehouse()
    train_index = days - monitor_days - 1
    window = min(28, train_index + 1)
    defs = build_definitions(source=source, warehouse=warehouse, window_days=window)
    monitoring = defs.resolve_job_def("daily_monitoring_job")
    retraining = defs.resolve_job_def("retraining_job")
    keys = [(date.fromisoformat(SYNTHETIC_START) + timedelta(days=i)).isoformat() for i in range(days)]

    console.rule(f"1/5 simulate {days} days of the city (seed {seed}, {trips_per_day} legs/day)")
    source.simulate(days)
    console.print(f"raw partitions in {source.folder}")

    with dagster_instance() as instance:
        console.rule(f"2/5 ingest, validate and featurize {days} daily partitions (one Dagster run each)")
        rows_in = valid = quarantined = passed = checks = 0
        for key in keys:
            result = monitoring.execute_in_process(
                partition_key=key,
                instance=instance,
                asset_selection=[dg.AssetKey(k) for k in INGEST_KEYS],
                run_config=QUIET_LOGS,
            )
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

        train_day = keys[train_index]
        console.rule(f"3/5 train on the {window} days ending {train_day}, evaluate, promote")
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

        console.rule(f"4/5 serve and monitor the {monitor_days} days after training")
        table = Table()
        for column in ("day", "champion", "legs", "80% cov", "90% cov", "drifted inputs", "retrain?"):
            table.add_column(column)
        for key in keys[train_index + 1 :]:
            monitoring.execute_in_process(partition_key=key, instance=instance, run_config=QUIET_LOGS)
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
                f"{drift.get('drifted_share', 0):.0%}",
                "yes" if drift.get("trigger") or performance.get("trigger") else "no",
            )
        console.print(table)

        console.rule("5/5 the drift sensor")
        sensor = defs.resolve_sensor_def("drift_retraining_sensor")
        evaluation = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
        requests = list(evaluation.run_requests or [])
        if not requests:
            console.print(f"no retraining requested: {evaluation.skip_reason.skip_message}")
        for request in requests:
            console.print(f"drift event on {request.partition_key}: running retraining_job for it")
            retraining.execute_in_process(
                partition_key=request.partition_key,
                instance=instance,
                tags=request.tags,
                run_config=QUIET_LOGS,
                raise_on_error=False,
            )
        dagster_home = instance.root_directory

    console.rule(f"done in {time.perf_counter() - began:.0f} s; where things are")
    console.print(f"state folder (ETA_HOME)   {home}")
    console.print(f"Dagster instance          {dagster_home}  (runs, events, schedules; dagster.yaml copied)")
    console.print(f"pipeline tables, reports  {warehouse.base}")
    console.print(f"Evidently reports         {warehouse.base / 'reports' / DRIFT}")
    console.print(f"MLflow store              {home / 'mlflow'}")
    console.print(
        "browse it all:            eta ui   (Dagster http://127.0.0.1:3001, MLflow http://127.0.0.1:5000)"
    )
    return {"candidate": candidate, "requests": [r.partition_key for r in requests]}
