"""Daily monitoring assets: the day's legs served by the champion of that morning, the Evidently drift
report and the coverage monitor on the completed trips. Each says whether to retrain (metadata `trigger`),
which the drift sensor reads.
"""

import dagster as dg
import polars as pl

from pipelines.assets_ingest import VALID, previous_days
from pipelines.metadata import metrics_table, png_markdown
from pipelines.resources import DriftDetector, ModelRegistry, Warehouse

SERVED, DRIFT, PERFORMANCE = "served_predictions", "drift_report", "performance_monitor"
TREND_DAYS = 28


def load_reference(warehouse: Warehouse, version: int):
    """The monitoring reference saved when `version` was a candidate; None for a model trained elsewhere."""
    from models.drift import DriftReference

    folder = warehouse.reference_dir(version)
    return DriftReference.load(folder) if folder.exists() else None


def _not_served(reason: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"trigger": False, "served": False, "reason": reason})


def build_monitor_assets(partitions: dg.PartitionsDefinition) -> list:
    """The monitoring assets on `partitions`."""

    @dg.asset(
        name=SERVED,
        partitions_def=partitions,
        group_name="monitoring",
        kinds={"polars", "parquet"},
        deps=[VALID],
        description="The day's legs scored by the champion that served them (features through the model's "
        "own frozen aggregates), with the completed trips' durations: what the monitors judge.",
    )
    def served_predictions(
        context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry, drift: DriftDetector
    ):
        from models.drift import monitoring_frame

        day = context.partition_key
        version = registry.champion_version()
        if version is None:
            warehouse.write_json(SERVED, day, {"served": False, "champion_version": None})
            return _not_served("no champion yet")
        legs = warehouse.read_table(VALID, day)
        if legs.height == 0:
            warehouse.write_json(SERVED, day, {"served": False, "champion_version": version})
            return _not_served("no trips this day")
        model = registry.load_version(version)
        features = model.features(legs)
        q = model.predict_from_features(features)
        frame = monitoring_frame(
            features, q, model.quantiles, legs["duration_s"].to_numpy(), drift.settings().segment_resolution
        ).with_columns(
            legs["trip_id"],
            legs["duration_s"],
            *[pl.Series(f"q{round(t * 100):02d}", q[:, i]) for i, t in enumerate(model.quantiles)],
        )
        path = warehouse.write_table(SERVED, day, frame)
        coverage = {k: float(frame[f"covered_{k}"].mean()) for k in ("80", "90")}
        warehouse.write_json(SERVED, day, {"served": True, "champion_version": version, "coverage": coverage})
        return dg.MaterializeResult(
            metadata={
                "served": True,
                "champion_version": version,
                "dagster/row_count": frame.height,
                "coverage_80": coverage["80"],
                "coverage_90": coverage["90"],
                "mlflow_model": dg.MetadataValue.url(registry.model_url(version)),
                "path": dg.MetadataValue.path(str(path)),
            }
        )

    @dg.asset(
        name=DRIFT,
        partitions_def=partitions,
        group_name="monitoring",
        kinds={"evidently"},
        deps=[SERVED],
        description="Evidently drift of the day's model inputs, predictions and residuals against the "
        "serving model's reference; the HTML report is saved and logged to MLflow.",
    )
    def drift_report(
        context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry, drift: DriftDetector
    ):
        from models.drift import data_drift

        day = context.partition_key
        served = warehouse.read_json(SERVED, day)
        if not served["served"]:
            warehouse.write_json(DRIFT, day, {"trigger": False, "champion_version": None})
            return _not_served("no champion served this day")
        version = served["champion_version"]
        reference = load_reference(warehouse, version)
        if reference is None:
            context.log.warning(
                f"no monitoring reference for v{version}: it was not trained by this pipeline"
            )
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
        table = ["| column | kind | method | score | threshold | drifted |", "|---|---|---|---:|---:|---|"]
        table += [
            f"| {c.column} | {c.kind} | {c.method} | {c.score:.3f} | {c.threshold} | {'yes' if c.drifted else ''} |"
            for c in summary.columns
        ]
        metadata = {
            "trigger": summary.trigger,
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in summary.reasons) or "no drift"),
            "champion_version": version,
            "drifted_share": summary.drifted_share,
            "dataset_drift": summary.dataset_drift,
            "prediction_drift": summary.prediction_drift,
            "residual_drift": bool(summary.residual_drift),
            "rows": summary.rows,
            "sampled_rows": summary.sampled_rows,
            "columns": dg.MetadataValue.md("\n".join(table)),
            "mlflow_monitoring_run": dg.MetadataValue.url(run_url),
        }
        if html is not None:
            metadata["evidently_report"] = dg.MetadataValue.path(str(html))
            metadata["evidently_report_url"] = dg.MetadataValue.url(html.as_uri())
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(
        name=PERFORMANCE,
        partitions_def=partitions,
        group_name="monitoring",
        deps=[SERVED],
        description="Coverage of the served 80%/90% intervals on the day's completed trips, overall and per "
        "origin area, against the serving model's reference coverage.",
    )
    def performance_monitor(context: dg.AssetExecutionContext, warehouse: Warehouse, drift: DriftDetector):
        from models.backtest import coverage_trend_plot
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
        trend_days, trend = [], []
        for key in [*previous_days(day, TREND_DAYS - 1), day]:
            if warehouse.has(PERFORMANCE, key, ".json"):
                coverage = warehouse.read_json(PERFORMANCE, key).get("coverage")
                if coverage:
                    trend_days.append(key)
                    trend.append(coverage)
        plot = coverage_trend_plot(
            trend_days, trend, warehouse.folder("plots", PERFORMANCE) / f"date={day}.png"
        )
        decayed = summary.decayed_segments
        return dg.MaterializeResult(
            metadata={
                "trigger": summary.trigger,
                "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in summary.reasons) or "no decay"),
                "champion_version": version,
                "coverage_80": summary.coverage.get("80"),
                "coverage_90": summary.coverage.get("90"),
                "coverage": metrics_table(
                    {"today": summary.coverage, "reference": summary.reference_coverage}, ["80", "90"]
                ),
                "areas_judged": summary.segments_judged,
                "areas_decayed": dg.MetadataValue.json(decayed),
                "coverage_trend": png_markdown([plot]),
                "dagster/row_count": summary.rows,
            }
        )

    return [served_predictions, drift_report, performance_monitor]
