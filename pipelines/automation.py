"""Jobs, the nightly schedule and the drift sensor.

- `ingest_job`: ingest, validate and featurize a day (the demo runs it per day).
- `daily_monitoring_job`: ingest the day, serve it with the champion, run both monitors.
- `retraining_job`: window -> candidate -> evaluation -> promotion (requested by the drift sensor).
- `nightly_job`: both, for yesterday; the nightly schedule first catches up missing days of the window.
The sensor turns monitor results into retraining requests, one per drift event (`models.drift`).
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from pipelines.assets_ingest import FEATURES, QUARANTINE, RAW, VALID, previous_days
from pipelines.assets_model import CANDIDATE, EVALUATION, PROMOTION, TRAINING_SET
from pipelines.assets_monitor import DRIFT, ONLINE, PERFORMANCE, SERVED
from pipelines.assets_serving import BENTO

INGEST_KEYS = (RAW, VALID, QUARANTINE, FEATURES)
MONITOR_KEYS = (SERVED, DRIFT, PERFORMANCE, ONLINE)
RETRAIN_KEYS = (TRAINING_SET, CANDIDATE, EVALUATION, PROMOTION)
TRIGGER_TAG = "eta/trigger"
# run config for in-process runs driven from the CLI: the run's events are still stored, not printed
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def build_jobs(partitions: dg.PartitionsDefinition) -> dict:
    def job(name: str, keys: tuple[str, ...], description: str):
        return dg.define_asset_job(
            name,
            selection=dg.AssetSelection.assets(*keys),
            partitions_def=partitions,
            description=description,
        )

    return {
        "ingest_job": job("ingest_job", INGEST_KEYS, "Ingest, validate and featurize a day."),
        "daily_monitoring_job": job(
            "daily_monitoring_job", INGEST_KEYS + MONITOR_KEYS, "Ingest a day, serve it, monitor it."
        ),
        "retraining_job": job(
            "retraining_job", RETRAIN_KEYS, "Train, evaluate and maybe promote on the window."
        ),
        "packaging_job": job(
            "packaging_job", (BENTO,), "Build the Bento that carries the champion of a day."
        ),
        "nightly_job": job(
            "nightly_job",
            INGEST_KEYS + MONITOR_KEYS + RETRAIN_KEYS,
            "Everything for one day, retraining included.",
        ),
    }


def build_nightly_schedule(
    nightly_job, partitions: dg.TimeWindowPartitionsDefinition, window_days: int = 28, hour: int = 2
) -> dg.ScheduleDefinition:
    """At `hour` local time: ingest any day of yesterday's training window not yet validated, then run
    everything for yesterday (runs queue one at a time, in that order)."""

    @dg.schedule(
        job=nightly_job,
        cron_schedule=f"0 {hour} * * *",
        execution_timezone=partitions.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        name="nightly_retraining",
    )
    def nightly_retraining(context: dg.ScheduleEvaluationContext):
        now = context.scheduled_execution_time or datetime.now(UTC)
        local_today = now.astimezone(ZoneInfo(partitions.timezone)).date()
        first = partitions.start.date()
        if local_today - timedelta(days=1) < first:
            return dg.SkipReason(f"no complete day yet: the first partition is {first}")
        yesterday = (local_today - timedelta(days=1)).isoformat()
        if partitions.end is not None and local_today - timedelta(days=1) >= partitions.end.date():
            return dg.SkipReason(
                f"the partitions end with {partitions.get_last_partition_key()}: the data go no further"
            )
        done = context.instance.get_materialized_partitions(dg.AssetKey(VALID))
        window = [d for d in previous_days(yesterday, window_days - 1) if date.fromisoformat(d) >= first]
        catch_up = [
            dg.RunRequest(
                run_key=f"catch-up-{day}",
                partition_key=day,
                asset_selection=[dg.AssetKey(k) for k in INGEST_KEYS],
                tags={TRIGGER_TAG: "catch-up"},
            )
            for day in window
            if day not in done
        ]
        return [
            *catch_up,
            dg.RunRequest(
                run_key=f"nightly-{yesterday}", partition_key=yesterday, tags={TRIGGER_TAG: "nightly"}
            ),
        ]

    return nightly_retraining


def build_packaging_sensor(packaging_job) -> dg.SensorDefinition:
    """Requests the Bento build for every day whose promotion step moved the champion."""

    @dg.asset_sensor(
        asset_key=dg.AssetKey(PROMOTION),
        job=packaging_job,
        name="bento_on_promotion",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def bento_on_promotion(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        materialization = asset_event.asset_materialization
        if materialization is None or not _value(materialization.metadata, "promoted"):
            return dg.SkipReason("the champion did not move")
        version = _value(materialization.metadata, "champion_version")
        return dg.RunRequest(
            run_key=f"bento-v{version}",
            partition_key=materialization.partition,
            tags={TRIGGER_TAG: "promotion"},
        )

    return bento_on_promotion


def _value(metadata: dict, key: str):
    entry = metadata.get(key)
    return None if entry is None else entry.value


def monitor_events(instance: dg.DagsterInstance, after_storage_id: int, limit: int = 1000) -> list:
    """Monitor materializations newer than the cursor, as `MonitorEvent`s."""
    from models.drift_trigger import MonitorEvent

    events = []
    for key in (DRIFT, PERFORMANCE):
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), after_storage_id=after_storage_id),
            limit=limit,
            ascending=True,
        )
        for record in result.records:
            materialization = record.asset_materialization
            metadata = materialization.metadata
            version = _value(metadata, "champion_version")
            events.append(
                MonitorEvent(
                    storage_id=record.storage_id,
                    partition=materialization.partition,
                    champion_version=None if version is None else int(version),
                    trigger=bool(_value(metadata, "trigger")),
                    reason=key,
                )
            )
    return events


def recipe_run_config(recipe: dict | None) -> dict:
    """Run config giving the candidate and its evaluation the same training overrides."""
    if not recipe:
        return {}
    return {"ops": {"candidate_model": {"config": recipe}, "model_evaluation": {"config": recipe}}}


def build_drift_sensor(
    retraining_job, cooldown_days: int = 3, recipe: dict | None = None
) -> dg.SensorDefinition:
    """`recipe`: TrainingConfig overrides for drift-requested retrainings (see definitions.DRIFT_RECIPE)."""

    @dg.sensor(
        job=retraining_job,
        name="drift_retraining_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests a retraining on the day a monitor first says so against a champion (one "
        f"request per drift event; again after {cooldown_days} days if the champion did not change).",
    )
    def drift_retraining_sensor(context: dg.SensorEvaluationContext):
        from models.drift_trigger import TriggerState, retraining_requests

        state = TriggerState.from_json(context.cursor)
        events = monitor_events(context.instance, state.after_storage_id)
        requests, state = retraining_requests(events, state, cooldown_days)
        runs = [
            dg.RunRequest(
                run_key=f"drift-{event.partition}-v{event.champion_version}",
                partition_key=event.partition,
                tags={TRIGGER_TAG: "drift", "eta/monitor": event.reason},
                run_config=recipe_run_config(recipe),
            )
            for event in requests
        ]
        skip = None if runs else f"{len(events)} new monitor result(s), no new drift event"
        return dg.SensorResult(run_requests=runs, cursor=state.to_json(), skip_reason=skip)

    return drift_retraining_sensor
