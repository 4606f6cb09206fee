"""The Dagster layer: asset functions called directly, checks called directly, the graph materialized for a
few partitions of a small simulated city (temp-dir resources, exact values), the sensor and the schedule
driven by hand, and the Definitions loading."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import dagster as dg
import numpy as np
import polars as pl
import pytest

from pipelines.assets_ingest import FeatureConfig
from pipelines.assets_serving import BENTO
from pipelines.automation import INGEST_KEYS, MONITOR_KEYS, RETRAIN_KEYS
from pipelines.checks import feature_problems
from pipelines.definitions import DRIFT_RECIPE, build_definitions
from pipelines.metadata import rounded
from pipelines.resources import (
    BentoPackager,
    DaskCluster,
    DriftDetector,
    ModelRegistry,
    OnlineStore,
    SyntheticCitySource,
    Warehouse,
)

ALL_KEYS = {*INGEST_KEYS, *MONITOR_KEYS, *RETRAIN_KEYS, BENTO}


class RecordingPackager(BentoPackager):
    """Test version: answers what `bentoml build` would for the registry's champion, without building
    (tests/serving/test_bento.py builds and serves a real Bento)."""

    def build(self, registry: ModelRegistry) -> dict[str, str]:
        version = registry.champion_version()
        return {
            "tag": f"eta_service:test-v{version}",
            "model_tag": f"eta-model:v{version}",
            "model_version": str(version),
            "path": "bentos/eta_service/test",
        }


# small and quick: the wiring is under test here, not the model (the gate's tolerance is wide for 300 legs/day)
FAST = {
    "learning_rate": 0.2,
    "num_leaves": 15,
    "median_rounds": 80,
    "spread_rounds": 40,
    "min_group_size": 100,
    "coverage_tolerance": 0.1,
}


def day(index: int) -> str:
    return (date(2026, 1, 5) + timedelta(days=index)).isoformat()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    resources = {
        "source": SyntheticCitySource(raw_dir=str(root / "raw"), trips_per_day=300),
        "warehouse": Warehouse(root=str(root / "warehouse")),
        "registry": ModelRegistry(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}?timeout=60", artifacts_dir=str(root / "artifacts")
        ),
        "drift": DriftDetector(reference_sample=400, current_sample=400),
        "packager": RecordingPackager(),
        "online": OnlineStore(root=str(root / "online")),
        "dask": DaskCluster(),  # no scheduler: training runs in the step's process
    }
    defs = build_definitions(window_days=5, **resources)
    assets = {a.key.to_user_string(): a for a in defs.assets if len(a.keys) == 1}
    assets["validate_trips"] = next(a for a in defs.assets if len(a.keys) == 2)
    checks = {next(iter(c.check_keys)).name: c for c in defs.asset_checks}
    return SimpleNamespace(
        root=root, defs=defs, resources=resources, assets=assets, checks=checks, **resources
    )


def _materialize(stack, keys, partition, instance, run_config=None, raise_on_error=True):
    return dg.materialize(
        [*stack.defs.assets, *stack.defs.asset_checks],
        selection=list(keys),
        partition_key=partition,
        resources=stack.resources,
        instance=instance,
        run_config=run_config or {},
        raise_on_error=raise_on_error,
    )


def _training_config(**overrides) -> dict:
    config = {**FAST, **overrides}
    return {"ops": {"candidate_model": {"config": config}, "model_evaluation": {"config": config}}}


@pytest.fixture(scope="module")
def graph(stack):
    """Five days ingested, a model trained on them, day 5 served and monitored, then a retraining on day 5
    whose candidate fails the blocking calibration check (tolerance 0)."""
    with dg.instance_for_test() as instance:
        ingest = [_materialize(stack, INGEST_KEYS, day(i), instance) for i in range(5)]
        train = _materialize(stack, RETRAIN_KEYS, day(4), instance, _training_config())
        package = _materialize(stack, (BENTO,), day(4), instance)
        monitor = _materialize(stack, INGEST_KEYS + MONITOR_KEYS, day(5), instance)
        blocked = _materialize(
            stack,
            RETRAIN_KEYS,
            day(5),
            instance,
            _training_config(coverage_tolerance=0.0),
            raise_on_error=False,
        )
        monitor_next = _materialize(stack, INGEST_KEYS + MONITOR_KEYS, day(6), instance)
        yield SimpleNamespace(
            instance=instance,
            ingest=ingest,
            train=train,
            package=package,
            monitor=monitor,
            blocked=blocked,
            monitor_next=monitor_next,
        )


def _metadata(result, key: str) -> dict:
    events = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == key
    ]
    assert len(events) == 1, key
    return {k: v.value for k, v in events[0].metadata.items()}


def _raw_file(stack, index: int) -> pl.DataFrame:
    return pl.read_parquet(stack.source.files_for(day(index))[0])


# ---- asset functions and checks, called directly ----


def test_warehouse_writes_atomically_and_names_a_damaged_partition(tmp_path) -> None:
    warehouse = Warehouse(root=str(tmp_path))
    warehouse.write_json("served_predictions", day(0), {"served": True})
    assert warehouse.read_json("served_predictions", day(0)) == {"served": True}
    assert [p.name for p in (tmp_path / "served_predictions").iterdir()] == [
        f"date={day(0)}.json"
    ]  # no temp left
    damaged = warehouse.path("validated_trips", day(0))
    damaged.parent.mkdir(parents=True)
    damaged.write_text("half a file")
    with pytest.raises(
        ValueError, match=rf"validated_trips partition {day(0)} \(.*\) is not a readable Parquet"
    ):
        warehouse.read_table("validated_trips", day(0))


def test_raw_trips_called_directly_stages_the_whole_partition(stack, tmp_path) -> None:
    warehouse = Warehouse(root=str(tmp_path))
    context = dg.build_asset_context(partition_key=day(0))
    result = stack.assets["raw_trips"](context, source=stack.source, warehouse=warehouse)
    raw = _raw_file(stack, 0)
    assert result.metadata["dagster/row_count"] == raw.height
    staged = warehouse.read_table("raw_trips", day(0))
    assert staged.height == raw.height
    assert staged["trip_id"].to_list() == raw["trip_id"].to_list()


def test_validation_and_features_called_directly(stack, tmp_path) -> None:
    warehouse = Warehouse(root=str(tmp_path))
    for index in (0, 1):
        context = dg.build_asset_context(partition_key=day(index))
        stack.assets["raw_trips"](context, source=stack.source, warehouse=warehouse)
        results = list(stack.assets["validate_trips"](context, warehouse=warehouse))
    valid, quarantine = (r.metadata["dagster/row_count"] for r in results)
    raw = _raw_file(stack, 1)
    assert valid + quarantine == raw.height
    injected = dict(raw["injected_defect"].drop_nulls().value_counts().iter_rows())
    assert results[1].metadata["reason_counts"].data == injected  # every planted defect, with its reason
    features = stack.assets["trip_features"](
        dg.build_asset_context(partition_key=day(1)),
        config=FeatureConfig(lookback_days=3),
        warehouse=warehouse,
    )
    assert features.metadata["dagster/row_count"] == valid
    assert features.metadata["history_days"] == 1  # day 0 exists, the two days before it do not
    table = warehouse.read_table("trip_features", day(1))
    assert table["trip_id"].to_list() == warehouse.read_table("validated_trips", day(1))["trip_id"].to_list()

    check = stack.checks["contract_quarantine_share"](
        dg.build_op_context(partition_key=day(1)), warehouse=warehouse
    )
    assert check.passed
    assert check.metadata["quarantine_share"].value == rounded(quarantine / raw.height)
    sanity = stack.checks["feature_sanity"](dg.build_op_context(partition_key=day(1)), warehouse=warehouse)
    assert sanity.passed


def test_contract_check_fails_above_its_threshold(stack, tmp_path) -> None:
    warehouse = Warehouse(root=str(tmp_path))
    warehouse.write_table("validated_trips", day(0), pl.DataFrame({"trip_id": ["a", "b", "c"]}))
    warehouse.write_table(
        "quarantined_trips", day(0), pl.DataFrame({"trip_id": ["d"], "reason": ["null_island"]})
    )
    check = stack.checks["contract_quarantine_share"](
        dg.build_op_context(partition_key=day(0)), warehouse=warehouse
    )
    assert not check.passed
    assert check.metadata["quarantine_share"].value == 0.25
    assert [r.data for r in check.metadata["reasons"].records] == [
        {"reason": "null_island", "rows": 1, "share": 0.25}
    ]


def test_a_day_without_trips_is_flagged_and_not_counted_as_data(stack, tmp_path) -> None:
    from pipelines.assets_model import WindowConfig

    warehouse = Warehouse(root=str(tmp_path))
    for index, trips in enumerate([["a", "b"], [], ["c"]]):
        warehouse.write_table(
            "validated_trips", day(index), pl.DataFrame({"trip_id": trips}, schema={"trip_id": pl.String})
        )
        warehouse.write_table(
            "quarantined_trips", day(index), pl.DataFrame(schema={"trip_id": pl.String, "reason": pl.String})
        )
    check = stack.checks["contract_quarantine_share"](
        dg.build_op_context(partition_key=day(1)), warehouse=warehouse
    )
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN  # surfaced, not blocking
    assert check.description == f"{day(1)} has no trips at all: did the source deliver this day?"
    with pytest.raises(dg.Failure, match=rf"has 2 day\(s\) of valid trips, fewer than 3.*no trips: {day(1)}"):
        stack.assets["training_set"](
            dg.build_asset_context(partition_key=day(2)),
            config=WindowConfig(window_days=3, min_days=3),
            warehouse=warehouse,
        )


def _features_frame(**columns) -> pl.DataFrame:
    base = {
        "trip_id": ["a", "b"],
        "haversine_km": [1.0, 2.0],
        "bearing_sin": [0.0, 1.0],
        "bearing_cos": [1.0, 0.0],
        "local_hour": [8, 23],
        "minute_of_day": [480, 1439],
        "hour_sin": [0.5, -0.5],
        "hour_cos": [0.5, -0.5],
        "weekday": [1, 7],
        "is_weekend": [0, 1],
        "is_holiday": [0, 0],
        "duration_s": [300.0, 600.0],
    }
    return pl.DataFrame({**base, **columns})


@pytest.mark.parametrize(
    ("columns", "valid_rows", "problems"),
    [
        ({}, 2, []),
        ({}, 3, ["2 feature rows for 3 valid trips"]),
        ({"trip_id": ["a", "a"]}, 2, ["trip_id is not unique"]),
        ({"haversine_km": [1.0, None]}, 2, ["haversine_km: 1 value(s) missing or outside [0.0, 500.0]"]),
        ({"local_hour": [24, 8]}, 2, ["local_hour: 1 value(s) missing or outside [0, 23]"]),
        ({"duration_s": [0.0, 10.0]}, 2, ["duration_s: 1 value(s) missing or outside [1e-09, inf]"]),
    ],
)
def test_feature_problems(columns, valid_rows, problems) -> None:
    assert feature_problems(_features_frame(**columns), valid_rows) == problems


# ---- the graph, materialized for a few partitions ----


def test_ingest_runs_account_for_every_row(stack, graph) -> None:
    for index, result in enumerate(graph.ingest):
        assert result.success
        raw = _raw_file(stack, index)
        assert _metadata(result, "raw_trips")["dagster/row_count"] == raw.height
        valid = _metadata(result, "validated_trips")["dagster/row_count"]
        quarantined = _metadata(result, "quarantined_trips")["dagster/row_count"]
        assert valid + quarantined == raw.height
        assert quarantined == raw["injected_defect"].drop_nulls().len()
        assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()} == {
            "contract_quarantine_share": True,
            "feature_sanity": True,
        }


def test_training_registers_version_1_and_promotes_it(stack, graph) -> None:
    result = graph.train
    assert result.success
    valid_rows = sum(_metadata(r, "validated_trips")["dagster/row_count"] for r in graph.ingest)
    training = _metadata(result, "training_set")
    assert training["dagster/row_count"] == valid_rows
    assert (training["first_day"], training["last_day"], training["days"]) == (day(0), day(4), 5)
    candidate = _metadata(result, "candidate_model")
    assert candidate["registered_version"] == 1
    assert candidate["alias"] == "challenger"
    assert candidate["mlflow_run"].startswith("http://127.0.0.1:5000/#/experiments/")
    assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()} == {
        "candidate_calibration": True
    }
    promotion = _metadata(result, "champion_promotion")
    assert promotion["promoted"] is True
    assert promotion["champion_version"] == 1
    assert promotion["previous_champion"] is None
    assert (stack.warehouse.reference_dir(1) / "reference.json").exists()


def _materialization(result, key: str):
    return next(
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == key
    )


def test_candidate_metadata_carries_numbers_tables_and_mlflow_artifact_links(stack, graph) -> None:
    """What the Dagster UI can draw: numbers per partition, a table, and links to the MLflow artifacts (it
    strips images embedded in markdown)."""
    from pipelines.assets_model import SHOWN_METRICS

    candidate = stack.warehouse.read_json("candidate_model", day(4))
    metadata = _materialization(graph.train, "candidate_model").metadata
    for key in SHOWN_METRICS:
        assert isinstance(metadata[key], dg.FloatMetadataValue), key
        assert metadata[key].value == rounded(candidate["metrics"][key])
    table = metadata["metrics"]
    assert isinstance(table, dg.TableMetadataValue)
    rows = {r.data["metric"]: r.data for r in table.records}
    assert list(rows) == list(SHOWN_METRICS)
    assert rows["coverage_80"]["candidate"] == rounded(candidate["metrics"]["coverage_80"])
    assert rows["mae_s"]["cell_hour"] == rounded(candidate["baselines"]["cell_hour"]["mae_s"])
    logged = {a.path for a in stack.registry.client().list_artifacts(candidate["run_id"], "plots")}
    links = {k: v.value for k, v in metadata.items() if k.startswith("plot_")}
    assert {f"plot_{p.removeprefix('plots/').removesuffix('.png')}" for p in logged} == set(links)
    page = candidate["run_url"].removesuffix("?workflowType=machine_learning")
    assert (
        links["plot_reliability"]
        == f"{page}/artifactPath/plots/reliability.png?workflowType=machine_learning"
    )
    assert not any(isinstance(v, dg.MarkdownMetadataValue) and "<img" in v.value for v in metadata.values())


def test_monitor_metadata_has_numbers_a_column_table_and_the_report_in_mlflow(stack, graph) -> None:
    drift = _materialization(graph.monitor, "drift_report").metadata
    columns = drift["columns"]
    assert isinstance(columns, dg.TableMetadataValue)
    summary = stack.warehouse.read_json("drift_report", day(5))
    assert {r.data["column"] for r in columns.records} == {c["column"] for c in summary["columns"]}
    assert drift["drifted_share"].value == rounded(summary["drifted_share"])
    report = drift["evidently_report"].value
    assert report.startswith("http://127.0.0.1:5000/#/experiments/")
    assert report.endswith(f"/artifactPath/reports/date={day(5)}.html?workflowType=machine_learning")
    assert not report.startswith("file:")
    performance = _materialization(graph.monitor, "performance_monitor").metadata
    assert isinstance(performance["coverage_80"], dg.FloatMetadataValue)
    assert "coverage_trend" not in performance  # the Plots tab draws coverage_80 over the partitions


def test_links_follow_the_configured_mlflow_ui(monkeypatch, tmp_path) -> None:
    from pipelines import ui

    monkeypatch.delenv(ui.MLFLOW_UI_ENV, raising=False)
    view = "?workflowType=machine_learning"  # MLflow's model-training view, not GenAI
    assert ModelRegistry().model_url(3) == f"http://127.0.0.1:5000/#/models/eta-model/versions/3{view}"
    monkeypatch.setenv(ui.MLFLOW_UI_ENV, "http://127.0.0.1:5055/")
    assert ModelRegistry().model_url(3) == f"http://127.0.0.1:5055/#/models/eta-model/versions/3{view}"
    assert ModelRegistry(ui_url="http://mlflow.internal").model_url(3).startswith("http://mlflow.internal/#/")
    # `eta ui` hands its MLflow port to the Dagster processes it starts
    env = ui.environment(tmp_path, tmp_path / "dagster", "http://127.0.0.1:5077")
    assert env[ui.MLFLOW_UI_ENV] == "http://127.0.0.1:5077"


def test_partitions_end_where_the_simulated_city_ends(tmp_path) -> None:
    from pipelines.definitions import simulated_end

    source = SyntheticCitySource(raw_dir=str(tmp_path / "raw"), trips_per_day=100)
    assert simulated_end(source) is None  # no city yet: up to today, days simulated when asked for
    source.simulate(3)
    assert simulated_end(source) == day(3)
    defs = build_definitions(source=source, end=simulated_end(source))
    keys = defs.resolve_job_def("ingest_job").partitions_def.get_partition_keys()
    assert keys == [day(0), day(1), day(2)]
    schedule = defs.resolve_schedule_def("nightly_retraining")
    later = datetime(2026, 3, 1, 2, 0, tzinfo=ZoneInfo("Africa/Nairobi"))
    with dg.instance_for_test() as instance:
        skipped = schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=later))
    assert f"end with {day(2)}" in skipped.skip_message


def test_the_promoted_champion_is_packaged_as_a_bento(stack, graph) -> None:
    bento = _metadata(graph.package, BENTO)
    assert bento["champion_version"] == 1
    assert bento["model"] == "eta-model:v1"
    assert bento["promoted_today"] is True
    assert stack.warehouse.read_json(BENTO, day(4))["model_version"] == "1"


def test_the_next_day_is_served_by_the_champion_and_monitored(stack, graph) -> None:
    result = graph.monitor
    assert result.success
    valid = _metadata(result, "validated_trips")["dagster/row_count"]
    served = _metadata(result, "served_predictions")
    assert served["champion_version"] == 1
    assert served["dagster/row_count"] == valid
    drift = stack.warehouse.read_json("drift_report", day(5))
    assert drift["champion_version"] == 1
    assert drift["rows"] == valid
    assert drift["sampled_rows"] == min(valid, 400)
    assert (stack.warehouse.base / "reports" / "drift_report" / f"date={day(5)}.html").exists()
    performance = _metadata(result, "performance_monitor")
    assert performance["champion_version"] == 1
    assert performance["dagster/row_count"] == valid
    table = stack.warehouse.read_table("served_predictions", day(5))
    assert performance["coverage_80"] == rounded(float(table["covered_80"].mean()))


def test_online_calibration_learns_each_served_day_and_adjusts_the_next(stack, graph) -> None:
    """Day 5 is learned (revision 1; it was served with no state, so both coverages are the champion's);
    day 6 is served with the day-5 state, and its reported coverage is that state applied by hand."""
    from models import online
    from pipelines.assets_monitor import served_day

    first = _metadata(graph.monitor, "online_calibration")
    assert (first["champion_version"], first["revision"], first["through"], first["active"]) == (
        1,
        1,
        day(5),
        True,
    )
    table5 = stack.warehouse.read_table("served_predictions", day(5))
    assert (
        first["coverage_80_online"] == first["coverage_80_champion"] == rounded(table5["covered_80"].mean())
    )
    second = _metadata(graph.monitor_next, "online_calibration")
    table6 = stack.warehouse.read_table("served_predictions", day(6))
    assert (second["revision"], second["through"]) == (2, day(6))
    assert second["legs_in_window"] == table5.height + table6.height
    learned_day5 = online.load(stack.online.store().folder("eta-model", 1) / "r1")
    completed = served_day(day(6), table6)
    q = online.apply(learned_day5, completed.q, completed.keys)
    assert second["coverage_80_online"] == rounded(
        float(np.mean((completed.y >= q[:, 1]) & (completed.y <= q[:, 5])))
    )
    assert second["coverage_80_champion"] == rounded(table6["covered_80"].mean())
    assert stack.online.store().latest_revision("eta-model", 1) == 2
    assert stack.warehouse.read_json("online_calibration", day(6))["served_with_revision"] == 1


def test_a_miscalibrated_candidate_is_registered_but_never_promoted(stack, graph) -> None:
    result = graph.blocked
    assert not result.success
    assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()} == {
        "candidate_calibration": False
    }
    assert _metadata(result, "candidate_model")["registered_version"] == 2
    promoted = [
        e for e in result.get_asset_materialization_events() if "champion_promotion" in str(e.asset_key)
    ]
    assert promoted == []
    assert not stack.warehouse.has("champion_promotion", day(5), ".json")
    assert stack.registry.alias("challenger") == 2
    assert stack.registry.alias("champion") == 1


# ---- sensor, schedule, definitions ----


def test_sensor_requests_one_retraining_per_drift_event(stack) -> None:
    sensor = stack.defs.resolve_sensor_def("drift_retraining_sensor")
    with dg.instance_for_test() as instance:

        def report(asset: str, partition: str, version: int, trigger: bool) -> None:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=asset,
                    partition=partition,
                    metadata={"trigger": trigger, "champion_version": version},
                )
            )

        def evaluate(cursor):
            return sensor(dg.build_sensor_context(instance=instance, cursor=cursor))

        report("drift_report", day(30), 1, False)
        quiet = evaluate(None)
        assert quiet.run_requests == []
        report("drift_report", day(31), 1, True)
        report("performance_monitor", day(31), 1, True)
        fired = evaluate(quiet.cursor)
        assert [(r.partition_key, r.run_key) for r in fired.run_requests] == [
            (day(31), f"drift-{day(31)}-v1")
        ]
        assert fired.run_requests[0].tags["eta/trigger"] == "drift"
        recipe = {"config": DRIFT_RECIPE}  # drift retrains weight recent days (see definitions.DRIFT_RECIPE)
        assert fired.run_requests[0].run_config == {
            "ops": {"candidate_model": recipe, "model_evaluation": recipe}
        }
        assert evaluate(fired.cursor).run_requests == []  # nothing new: nothing requested twice
        report("performance_monitor", day(32), 1, True)  # same champion still drifting: same event
        same = evaluate(fired.cursor)
        assert same.run_requests == []
        report("drift_report", day(33), 2, True)  # the new champion drifts too: a new event
        again = evaluate(same.cursor)
        assert [r.partition_key for r in again.run_requests] == [day(33)]


def test_a_promotion_requests_one_bento_build_and_a_kept_champion_none(stack) -> None:
    sensor = stack.defs.resolve_sensor_def("bento_on_promotion")
    with dg.instance_for_test() as instance:

        def promotion(partition: str, promoted: bool, version: int) -> None:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key="champion_promotion",
                    partition=partition,
                    metadata={"promoted": promoted, "champion_version": version},
                )
            )

        promotion(day(4), True, 1)
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=stack.defs))
        assert [(r.partition_key, r.run_key) for r in first.run_requests] == [(day(4), "bento-v1")]
        promotion(day(5), False, 1)
        kept = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=stack.defs)
        )
        assert kept.run_requests == []
        assert "did not move" in kept.skip_message


def test_nightly_schedule_catches_up_the_window_then_runs_yesterday(stack) -> None:
    schedule = stack.defs.resolve_schedule_def("nightly_retraining")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Africa/Nairobi"
    when = datetime(2026, 1, 10, 2, 0, tzinfo=ZoneInfo("Africa/Nairobi"))
    with dg.instance_for_test() as instance:
        requests = schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=when))
    # window of 5 days ending 01-09 is 01-05..01-09; nothing ingested yet
    assert [(r.partition_key, r.tags["eta/trigger"]) for r in requests] == [
        (day(0), "catch-up"),
        (day(1), "catch-up"),
        (day(2), "catch-up"),
        (day(3), "catch-up"),
        (day(4), "nightly"),
    ]
    assert requests[0].asset_selection == [dg.AssetKey(k) for k in INGEST_KEYS]
    assert requests[-1].asset_selection is None


def test_definitions_load_with_jobs_schedule_and_sensor() -> None:
    from pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()} == ALL_KEYS
    assert {c.name for checks in defs.asset_checks for c in checks.check_keys} == {
        "contract_quarantine_share",
        "feature_sanity",
        "candidate_calibration",
    }
    assert [s.name for s in defs.schedules] == ["nightly_retraining"]
    assert [s.name for s in defs.sensors] == ["drift_retraining_sensor", "bento_on_promotion"]
    assert defs.resolve_sensor_def("bento_on_promotion").job_name == "packaging_job"
    assert defs.resolve_sensor_def("drift_retraining_sensor").job_name == "retraining_job"
    assert {j.name for j in defs.resolve_all_job_defs()} >= {
        "ingest_job",
        "daily_monitoring_job",
        "retraining_job",
        "nightly_job",
    }
    assert set(defs.resources) == {"source", "warehouse", "registry", "drift", "packager", "online", "dask"}


def test_folder_source_cuts_monthly_files_into_local_days() -> None:
    from pathlib import Path

    from pipelines.resources import FolderSource

    source = FolderSource(adapter="citibike", folder=str(Path(__file__).parent / "fixtures" / "citibike"))

    def rows(partition: str) -> list[tuple[str, int]]:
        staged = source.stage(partition)
        return list(zip(staged["source_file"].to_list(), staged["row_number"].to_list(), strict=True))

    # 2018-03-11 02:30 does not exist in New York (DST gap): its row has no day and joins its file's first day
    assert rows("2018-03-11") == [
        ("JC-TEST01-citibike-tripdata.csv", 1),
        ("JC-TEST01-citibike-tripdata.csv", 2),
        ("JC-TEST02-citibike-tripdata.csv", 1),
    ]
    assert rows("2018-03-10") == []
    assert rows("2018-11-04") == [("JC-TEST02-citibike-tripdata.csv", 2)]
    assert rows("2019-12-31") == [
        ("JC-TEST03-citibike-tripdata.csv", 2),
        ("JC-TEST03-citibike-tripdata.csv", 3),
    ]


# ---- the pipeline's configuration holds overrides of the core's, never copies of its defaults ----


def test_training_config_left_unset_is_the_core_default() -> None:
    from dataclasses import fields

    from models.conformal import CalibrationConfig
    from models.gate import GateConfig
    from models.quantile import BoostingParams
    from models.train import TrainConfig
    from pipelines.assets_model import OVERRIDES, TrainingConfig

    assert TrainingConfig().train_config() == TrainConfig()
    assert TrainingConfig().gate() == GateConfig()
    owners = {
        "train": TrainConfig,
        "boosting": BoostingParams,
        "calibration": CalibrationConfig,
        "gate": GateConfig,
    }
    for name, (owner, field) in OVERRIDES.items():
        if owner == "features":
            from features import FeatureSpec

            assert field in FeatureSpec.model_fields, name
        else:
            assert field in {f.name for f in fields(owners[owner])}, name
    assert set(OVERRIDES) == set(TrainingConfig.model_fields)
    overridden = TrainingConfig(coverage_tolerance=0.01, num_leaves=7)
    assert overridden.gate().coverage_tolerance == 0.01
    assert overridden.train_config().params.num_leaves == 7


def test_drift_detector_left_unset_is_the_core_default() -> None:
    from dataclasses import fields

    from models.drift import DriftSettings

    assert DriftDetector().settings() == DriftSettings()
    assert set(DriftDetector.model_fields) - {"save_html"} == {f.name for f in fields(DriftSettings)}
    changed = DriftDetector(weather_threshold=9.0, levels=[0.8]).settings()
    assert (changed.weather_threshold, changed.levels) == (9.0, (0.8,))
    assert changed.drift_share == DriftSettings().drift_share


def test_metadata_numbers_are_rounded_for_the_ui_and_counts_stay_whole() -> None:
    from pipelines.metadata import records_table, shown

    metadata = shown(
        {"share": 0.0007545271629778583, "legs": np.int64(12345), "ok": np.bool_(True), "day": "x"}
    )
    assert metadata == {"share": 0.0007545, "legs": 12345, "ok": True, "day": "x"}
    assert type(metadata["legs"]) is int
    table = records_table([{"reason": "null_island", "rows": np.int64(12345), "share": 1 / 3}])
    assert [r.data for r in table.records] == [{"reason": "null_island", "rows": 12345, "share": 0.3333}]
    assert [c.type for c in table.schema.columns] == ["string", "int", "float"]
