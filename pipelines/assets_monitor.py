"""Daily monitoring assets: the day's legs served by the champion of that morning, the Evidently drift
report and the coverage monitor on the completed trips. Each says whether to retrain (metadata `trigger`),
which the drift sensor reads. Each asset's compute is a function of this module; `build_monitor_assets`
only applies the decorators, with the partitions known at load time.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from pipelines.assets_ingest import VALID
from pipelines.metadata import metrics_table, reasons_md, records_table, shown
from pipelines.resources import DriftDetector, ModelRegistry, OnlineStore, Warehouse

if TYPE_CHECKING:
    from models.bundle import EtaModel
    from models.drift import DriftSummary
    from models.online import OnlineState

SERVED, DRIFT, PERFORMANCE = "served_predictions", "drift_report", "performance_monitor"
ONLINE = "online_calibration"
KEY_PREFIX = "key_"  # served-frame columns holding the online calibrator's area keys


def load_reference(warehouse: Warehouse, version: int):
    """The monitoring reference saved when `version` was a candidate; None for a model trained elsewhere."""
    from models.drift import DriftReference

    folder = warehouse.reference_dir(version)
    return DriftReference.load(folder) if folder.exists() else None


def _not_served(reason: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"trigger": False, "served": False, "reason": reason})


def served_predictions(
    context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry, drift: DriftDetector
) -> dg.MaterializeResult:
    """Score the day's valid legs with the current champion and write what was served beside the outcome."""
    day = context.partition_key
    version = registry.champion_version()
    if version is None:
        warehouse.write_json(SERVED, day, {"served": False, "champion_version": None})
        return _not_served("no champion yet")
    legs = warehouse.read_table(VALID, day)
    if legs.height == 0:
        warehouse.write_json(SERVED, day, {"served": False, "champion_version": version})
        return _not_served("no trips this day")
    frame = served_frame(registry.load_version(version), legs, drift.settings().segment_resolution)
    path = warehouse.write_table(SERVED, day, frame)
    coverage = {k: float(frame[f"covered_{k}"].mean()) for k in ("80", "90")}
    warehouse.write_json(SERVED, day, {"served": True, "champion_version": version, "coverage": coverage})
    return dg.MaterializeResult(
        metadata={
            "served": True,
            "champion_version": version,
            "dagster/row_count": frame.height,
            **shown({"coverage_80": coverage["80"], "coverage_90": coverage["90"]}),
            "mlflow_model": dg.MetadataValue.url(registry.model_url(version)),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


def drift_report(
    context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry, drift: DriftDetector
) -> dg.MaterializeResult:
    """Evidently drift of the served day against the serving model's reference, logged to MLflow."""
    from models.drift import data_drift

    day = context.partition_key
    served = warehouse.read_json(SERVED, day)
    if not served["served"]:
        warehouse.write_json(DRIFT, day, {"trigger": False, "champion_version": None})
        return _not_served("no champion served this day")
    version = served["champion_version"]
    reference = load_reference(warehouse, version)
    if reference is None:
        context.log.warning(f"no monitoring reference for v{version}: it was not trained by this pipeline")
        warehouse.write_json(DRIFT, day, {"trigger": False, "champion_version": version})
        return _not_served(f"no monitoring reference for v{version}")
    html = warehouse.folder("reports", DRIFT) / f"date={day}.html" if drift.save_html else None
    summary = data_drift(warehouse.read_table(SERVED, day), reference, drift.settings(), html)
    payload = {**summary.as_dict(), "champion_version": version}
    json_path = warehouse.write_json(DRIFT, day, payload)
    scores = {c.metric_name: c.score for c in summary.columns}
    run_url = registry.log_monitoring(
        day,
        version,
        {"drifted_share": summary.drifted_share, **{f"drift_{k}": v for k, v in scores.items()}},
        [p for p in (html, json_path) if p is not None],
    )
    return dg.MaterializeResult(metadata=drift_metadata(summary, version, run_url, html, registry))


def drift_metadata(
    summary: "DriftSummary", version: int, run_url: str, html: Path | None, registry: ModelRegistry
) -> dict:
    """What the drift report shows in Dagster: the verdict, its reasons, a row per column, the links."""
    columns = records_table(
        [
            {
                "column": c.column,
                "kind": c.kind,
                "method": c.method,
                "score": c.score,
                "threshold": c.threshold,
                "drifted": c.drifted,
            }
            for c in summary.columns
        ]
    )
    metadata = {
        "trigger": summary.trigger,
        "reasons": reasons_md(summary.reasons, "no drift"),
        "champion_version": version,
        **shown({"drifted_share": summary.drifted_share}),
        "dataset_drift": summary.dataset_drift,
        "prediction_drift": summary.prediction_drift,
        "residual_drift": bool(summary.residual_drift),
        "rows": summary.rows,
        "sampled_rows": summary.sampled_rows,
        "columns": columns,
        "mlflow_monitoring_run": dg.MetadataValue.url(run_url),
    }
    if html is not None:
        metadata["evidently_report"] = dg.MetadataValue.url(
            registry.artifact_url(run_url, f"reports/{html.name}")
        )
        metadata["evidently_report_file"] = dg.MetadataValue.path(str(html))
    return metadata


def performance_monitor(
    context: dg.AssetExecutionContext, warehouse: Warehouse, drift: DriftDetector
) -> dg.MaterializeResult:
    """Coverage of the served intervals on the day's completed trips against the reference coverage."""
    from models.drift import coverage_decay

    day = context.partition_key
    served = warehouse.read_json(SERVED, day)
    version = served.get("champion_version")
    reference = load_reference(warehouse, version) if served["served"] else None
    if reference is None:
        warehouse.write_json(PERFORMANCE, day, {"trigger": False, "champion_version": version})
        return _not_served("no champion or no monitoring reference")
    summary = coverage_decay(warehouse.read_table(SERVED, day), reference, drift.settings())
    warehouse.write_json(PERFORMANCE, day, {**summary.as_dict(), "champion_version": version})
    decayed = summary.decayed_segments
    return dg.MaterializeResult(
        metadata={
            "trigger": summary.trigger,
            "reasons": reasons_md(summary.reasons, "no decay"),
            "champion_version": version,
            # per partition: the asset's Plots tab draws the coverage trend over the days
            **shown(
                {
                    "coverage_80": summary.coverage.get("80"),
                    "coverage_90": summary.coverage.get("90"),
                    "reference_coverage_80": summary.reference_coverage.get("80"),
                }
            ),
            "coverage": metrics_table(
                {"today": summary.coverage, "reference": summary.reference_coverage}, ["80", "90"]
            ),
            "areas_judged": summary.segments_judged,
            "areas_decayed": dg.MetadataValue.json(decayed),
            "dagster/row_count": summary.rows,
        }
    )


def online_calibration(
    context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry, online: OnlineStore
) -> dg.MaterializeResult:
    """Learn the served day into the champion's online state, store the state the service applies next,
    and report the day's coverage with and without the state that served it."""
    from models import online as oc
    from models.tracking import REGISTERED_MODEL

    day = context.partition_key
    served = warehouse.read_json(SERVED, day)
    if not served["served"]:
        warehouse.write_json(ONLINE, day, {"learned": False, "champion_version": None})
        return _not_served("no champion served this day")
    version = served["champion_version"]
    frame = warehouse.read_table(SERVED, day)
    completed = served_day(day, frame)
    store = online.store()
    state = store.latest(REGISTERED_MODEL, version) or oc.OnlineState(version, completed_quantiles(frame))
    serving = oc.learned_before(state, day)  # what adjusted the day's answers
    learned = oc.update(state, completed)
    path = store.write(REGISTERED_MODEL, learned)
    report = {
        "champion": day_coverage(completed.y, completed.q, learned.quantiles),
        "online": day_coverage(
            completed.y, oc.apply(serving, completed.q, completed.keys), learned.quantiles
        ),
    }
    groups = learned.calibration.summary() if learned.calibration is not None else {}
    payload = {
        "learned": True,
        **learned.describe(),
        "served_with_revision": serving.revision if serving.calibration is not None else None,
        "coverage": report,
        "groups_with_offsets": groups,
        "state": str(path),
    }
    warehouse.write_json(ONLINE, day, payload)
    run_url = registry.log_monitoring(
        day,
        version,
        {f"{who}_{k}": v for who, m in report.items() for k, v in m.items()},
        [],
        kind="online",
        tags={"online_revision": str(learned.revision), "online_through": str(learned.through)},
    )
    return dg.MaterializeResult(metadata=online_metadata(version, learned, report, groups, run_url, path))


def online_metadata(
    version: int, learned: "OnlineState", report: dict, groups: dict, run_url: str, path: Path
) -> dict:
    """What the online calibration shows in Dagster: the state learned, and the day's coverage and width
    of the champion's windows with (`online`) and without (`champion`) the state that served it."""
    return {
        "champion_version": version,
        "revision": learned.revision,
        "through": learned.through,
        "legs_in_window": learned.describe()["legs"],
        "active": learned.calibration is not None,
        **shown(
            {
                f"{metric.removesuffix('_s')}_{who}": report[who][metric]
                for metric in ("coverage_80", "coverage_90", "width_80_s")
                for who in ("champion", "online")
            }
        ),
        "coverage": metrics_table(report, ["coverage_80", "coverage_90", "width_80_s"]),
        "groups_with_offsets": dg.MetadataValue.json(groups),
        "mlflow_monitoring_run": dg.MetadataValue.url(run_url),
        "state": dg.MetadataValue.path(str(path)),
    }


def build_monitor_assets(partitions: dg.PartitionsDefinition) -> list:
    """The monitoring assets on `partitions`."""
    served_predictions_asset = dg.asset(
        name=SERVED,
        partitions_def=partitions,
        group_name="monitoring",
        kinds={"polars", "parquet"},
        deps=[VALID],
        description="The day's legs scored by the champion that served them (features through the model's "
        "own frozen aggregates), with the completed trips' durations: what the monitors judge.",
    )(served_predictions)

    drift_report_asset = dg.asset(
        name=DRIFT,
        partitions_def=partitions,
        group_name="monitoring",
        kinds={"evidently"},
        deps=[SERVED],
        description="Evidently drift of the day's model inputs, predictions and residuals against the "
        "serving model's reference; the HTML report is saved and logged to MLflow.",
    )(drift_report)

    performance_monitor_asset = dg.asset(
        name=PERFORMANCE,
        partitions_def=partitions,
        group_name="monitoring",
        deps=[SERVED],
        description="Coverage of the served 80%/90% intervals on the day's completed trips, overall and per "
        "origin area, against the serving model's reference coverage.",
    )(performance_monitor)

    online_calibration_asset = dg.asset(
        name=ONLINE,
        partitions_def=partitions,
        group_name="monitoring",
        deps=[SERVED],
        description="The champion's windows recalibrated on the last days' completed legs (models.online): "
        "learns the day, records the state the service applies next, and reports the day's coverage with "
        "and without the state that served it.",
    )(online_calibration)

    return [served_predictions_asset, drift_report_asset, performance_monitor_asset, online_calibration_asset]


def served_frame(model: "EtaModel", legs: pl.DataFrame, segment_resolution: int) -> pl.DataFrame:
    """The legs scored by `model`: its monitoring frame with the trip ids, durations, the
    quantile columns and the online calibrator's area keys."""
    from models.bundle import calibration_keys
    from models.drift import monitoring_frame
    from models.online import OnlineConfig
    from models.quantile import qtag

    features = model.features(legs)
    q = model.predict_from_features(features)
    keys = calibration_keys(features, model.spec, OnlineConfig().calibration())
    return monitoring_frame(
        features, q, model.quantiles, legs["duration_s"].to_numpy(), segment_resolution
    ).with_columns(
        legs["trip_id"],
        legs["duration_s"],
        *[pl.Series(qtag(t), q[:, i]) for i, t in enumerate(model.quantiles)],
        *[pl.Series(KEY_PREFIX + name, keys[name].astype(str)) for name in OnlineConfig().layers],
    )


def completed_quantiles(frame: pl.DataFrame) -> list[float]:
    from models.scoring import quantile_columns

    return [int(c[1:]) / 100 for c in quantile_columns(frame.columns)]


def served_day(day: str, frame: pl.DataFrame):
    """A served day's completed legs as the online calibrator learns them."""
    from models.online import CompletedDay
    from models.scoring import quantile_columns

    keys = {
        c.removeprefix(KEY_PREFIX): frame[c].to_numpy().astype(object)
        for c in frame.columns
        if c.startswith(KEY_PREFIX)
    }
    q = frame.select(quantile_columns(frame.columns)).to_numpy()
    return CompletedDay(day, frame["duration_s"].to_numpy(), q, keys)


def day_coverage(y, q, quantiles) -> dict[str, float]:
    from models.metrics import summary_metrics

    metrics = summary_metrics(y, q, quantiles, (0.8, 0.9))
    return {k: metrics[k] for k in ("coverage_80", "coverage_90", "width_80_s")}
