"""Daily model assets: rolling training window -> candidate (MLflow run, registered challenger) ->
evaluation against the champion -> champion promotion (behind the blocking calibration check).

Partition D means "trained after day D": the window ends with D and the promoted model serves D + 1.
Each asset's compute is a function of this module; `build_model_assets` only applies the decorators, with
the partitions known at load time.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from models.quantile import qtag
from pipelines.assets_ingest import FEATURES, VALID, previous_days, read_days
from pipelines.metadata import metrics_table, reasons_md, shown
from pipelines.resources import DaskCluster, DriftDetector, ModelRegistry, TripSource, Warehouse

if TYPE_CHECKING:
    from models.train import TrainConfig, TrainingResult

TRAINING_SET, CANDIDATE, EVALUATION, PROMOTION = (
    "training_set",
    "candidate_model",
    "model_evaluation",
    "champion_promotion",
)
SHOWN_METRICS = (
    "mae_s",
    "pinball_mean",
    "crps_s",
    "coverage_80",
    "coverage_90",
    "width_80_s",
    "width_90_s",
    "late_rate_90",
)


class WindowConfig(dg.Config):
    """The rolling training window: the last `window_days` partitions up to and including the run's day."""

    window_days: int = 0  # 0: the window the Definitions were built with (28 days by default)
    min_days: int = 7  # fewer valid days than this in the window is an error, not a model


# TrainingConfig field -> (core configuration, its field): the pipeline's knobs are overrides of these
OVERRIDES: dict[str, tuple[str, str]] = {
    "model_kind": ("train", "model_kind"),
    "split": ("train", "split"),
    "seed": ("train", "seed"),
    "input_dropout": ("train", "input_dropout"),
    "refit": ("train", "refit"),
    "lookback_days": ("features", "lookback_days"),
    "shrinkage_trips": ("features", "shrinkage_trips"),
    "cell_resolutions": ("features", "cell_resolutions"),
    "learning_rate": ("boosting", "learning_rate"),
    "num_leaves": ("boosting", "num_leaves"),
    "median_rounds": ("boosting", "median_rounds"),
    "spread_rounds": ("boosting", "spread_rounds"),
    "calibration_layers": ("calibration", "layers"),
    "min_group_size": ("calibration", "min_group_size"),
    "evidence_z": ("calibration", "evidence_z"),
    "coverage_tolerance": ("gate", "coverage_tolerance"),
    "pinball_tolerance": ("gate", "pinball_tolerance"),
}


class TrainingConfig(dg.Config):
    """Overrides of the candidate's training and gate configuration. A field left unset keeps the core's
    default: `models.train.TrainConfig`, `models.quantile.BoostingParams`, `features.FeatureSpec`,
    `models.conformal.CalibrationConfig` and `models.gate.GateConfig` are the one home of every default."""

    model_kind: str | None = None
    split: list[float] | None = None  # shares of days: train, calibration, test
    seed: int | None = None  # of the boosters and of the input dropout
    input_dropout: float | None = None
    refit: bool | None = None  # ship a model refit on the newest days
    lookback_days: int | None = None  # days of history behind the speed aggregates
    shrinkage_trips: float | None = None
    cell_resolutions: list[int] | None = None
    learning_rate: float | None = None
    num_leaves: int | None = None
    median_rounds: int | None = None
    spread_rounds: int | None = None
    calibration_layers: list[str] | None = None  # see models.conformal.LAYER_NAMES
    min_group_size: int | None = None
    evidence_z: float | None = None
    coverage_tolerance: float | None = None
    pinball_tolerance: float | None = None

    def _set(self, family: str) -> dict[str, object]:
        """The overrides given for one core configuration, by its own field names."""
        out = {}
        for name, (owner, field) in OVERRIDES.items():
            value = getattr(self, name)
            if owner == family and value is not None:
                out[field] = tuple(value) if isinstance(value, list) else value
        return out

    def train_config(self):
        from dataclasses import replace

        from features import FeatureSpec
        from models.conformal import CalibrationConfig
        from models.quantile import BoostingParams
        from models.train import TrainConfig

        seed = self._set("train").get("seed")
        boosting = {**({"seed": seed} if seed is not None else {}), **self._set("boosting")}
        return replace(
            TrainConfig(),
            **self._set("train"),
            params=replace(BoostingParams(), **boosting),
            spec=FeatureSpec(**self._set("features")),
            calibration=replace(CalibrationConfig(), **self._set("calibration")),
        )

    def gate(self):
        from dataclasses import replace

        from models.gate import GateConfig

        return replace(GateConfig(), **self._set("gate"))


def training_set(
    context: dg.AssetExecutionContext, config: WindowConfig, warehouse: Warehouse, default_window: int
) -> dg.MaterializeResult:
    """The valid trips of the `window` days ending with the partition's day (`config.window_days`, or
    `default_window` when unset); too few days with trips is a failure, not a model."""
    from models.train import data_hash

    day = context.partition_key
    window = config.window_days or default_window
    wanted = [*previous_days(day, window - 1), day]
    frame, read = read_days(warehouse, VALID, wanted)
    # a day whose file holds no trip is not a day of data (a silent feed writes empty days)
    empty = [d for d in read if not pl.scan_parquet(warehouse.path(VALID, d)).head(1).collect().height]
    with_trips = [d for d in read if d not in empty]
    if len(with_trips) < min(config.min_days, window):
        raise dg.Failure(
            description=f"the {window}-day window ending {day} has {len(with_trips)} day(s) of valid "
            f"trips, fewer than {config.min_days}: materialize {VALID} for {wanted[0]}..{day} first"
            + (f" (days with no trips: {', '.join(empty)})" if empty else "")
        )
    path = warehouse.write_table(TRAINING_SET, day, frame)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "first_day": read[0],
            "last_day": read[-1],
            "days": len(with_trips),
            "missing_days": dg.MetadataValue.json(sorted(set(wanted) - set(with_trips))),
            "data_hash": data_hash(frame),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


def candidate_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    warehouse: Warehouse,
    registry: ModelRegistry,
    drift: DriftDetector,
    source: TripSource,
    dask: DaskCluster,
) -> dg.MaterializeResult:
    """Train on the day's training set, register the result as `challenger`, save its monitoring reference
    and write the candidate's record (what the evaluation, the demo and the backtest read)."""
    day = context.partition_key
    train_config = config.train_config()
    result, trained_on = train_candidate(warehouse.read_table(TRAINING_SET, day), train_config, dask)
    trigger = context.run.tags.get("eta/trigger", "manual")
    registered = registry.register_challenger(
        result,
        train_config,
        config.gate(),
        run_name=f"candidate-{day}",
        extra_params={
            "partition": day,
            "source": source.source_name,
            "trigger": trigger,
            "engine": trained_on,
        },
        data_source=str(warehouse.path(TRAINING_SET, day)),
    )
    reference_dir = save_monitoring_reference(result, registered.version, drift, warehouse)
    run_url = registry.run_url(registered.run_id)
    plots = registry.artifact_urls(registered.run_id, "plots", run_url)
    record = {
        **registered.as_dict(),
        "run_url": run_url,
        "metrics": result.metrics,
        "baselines": result.baseline_metrics,
        "beats_baselines": result.beats_baselines(),
        "windows": result.windows.as_dict(),
        "rows": result.rows,
        "data_hash": result.data_hash,
        "reference_dir": str(reference_dir),
        "plots": plots,
        "trigger": trigger,
    }
    warehouse.write_json(CANDIDATE, day, record)
    return dg.MaterializeResult(metadata=candidate_metadata(record, registry.model_url(registered.version)))


def train_candidate(
    trips: pl.DataFrame, train_config: "TrainConfig", dask: DaskCluster
) -> tuple["TrainingResult", str]:
    """`train_eta_model` on the Dask cluster's engine (or in process without one); the result and the
    engine's name, logged with the run."""
    from models.distributed import engine_name
    from models.train import train_eta_model

    with dask.engine() as engine:
        return train_eta_model(trips, train_config, engine), engine_name(engine)


def candidate_metadata(record: dict, model_url: str) -> dict[str, object]:
    """What the candidate shows in Dagster, from its record: the version and its links, the test window,
    the metrics beside the baselines' (a table, and each shown metric as a number) and the plots."""
    metrics = record["metrics"]
    return {
        "registered_version": record["version"],
        "alias": "challenger",
        "mlflow_run": dg.MetadataValue.url(record["run_url"]),
        "mlflow_model": dg.MetadataValue.url(model_url),
        "run_id": record["run_id"],
        "trigger": record["trigger"],
        "test_window": record["windows"]["test_days"],
        "rows": dg.MetadataValue.json(record["rows"]),
        "metrics": metrics_table({"candidate": metrics, **record["baselines"]}, SHOWN_METRICS),
        # numbers per partition: the asset's Plots tab draws them over the days
        **shown({key: metrics[key] for key in SHOWN_METRICS if key in metrics}),
        **{f"plot_{name}": dg.MetadataValue.url(url) for name, url in record["plots"].items()},
        "monitoring_reference": dg.MetadataValue.path(record["reference_dir"]),
    }


def save_monitoring_reference(
    result: "TrainingResult", version: int, drift: DriftDetector, warehouse: Warehouse
) -> Path:
    """The drift and coverage reference of a trained model, from its test days, saved
    where the monitors look for `version`'s; returns its folder."""
    from models.drift import build_reference, monitoring_frame

    settings = drift.settings()
    frame = result.test_frame
    q = frame.select([qtag(t) for t in result.model.quantiles]).to_numpy()
    reference = build_reference(
        monitoring_frame(
            frame, q, result.model.quantiles, frame["duration_s"].to_numpy(), settings.segment_resolution
        ),
        settings,
        version,
    )
    return reference.save(warehouse.reference_dir(version))


def model_evaluation(
    context: dg.AssetExecutionContext, config: TrainingConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """The gate's verdict on the candidate against the champion, with this run's gate settings."""
    from models.gate import promotion_decision

    day = context.partition_key
    candidate = warehouse.read_json(CANDIDATE, day)
    metrics = candidate["metrics"]
    decision = candidate["decision"]
    gate = config.gate()
    # re-judged with this run's gate settings, on the numbers the candidate step measured
    verdict = promotion_decision(metrics, decision.get("champion"), gate)
    gaps = dict(verdict.coverage_gaps)
    payload = {
        "version": candidate["version"],
        "champion_version": candidate["champion_version"],
        "coverage_gaps": gaps,
        "coverage_tolerance": verdict.coverage_tolerance,
        "calibrated": verdict.calibrated,
        "promote": verdict.promote,
        "reasons": verdict.reasons,
        "decision": verdict.as_dict(),
    }
    warehouse.write_json(EVALUATION, day, payload)
    compared = {"candidate": metrics, "champion": decision.get("champion"), **candidate["baselines"]}
    return dg.MaterializeResult(
        metadata={
            "candidate_version": candidate["version"],
            "champion_version": candidate["champion_version"],
            "calibrated": payload["calibrated"],
            "gate_promote": verdict.promote,
            "reasons": reasons_md(verdict.reasons, "no reason given"),
            "comparison": metrics_table(compared, SHOWN_METRICS),
            **shown({f"coverage_gap_{level}": gap for level, gap in gaps.items()}),
        }
    )


def champion_promotion(
    context: dg.AssetExecutionContext, warehouse: Warehouse, registry: ModelRegistry
) -> dg.MaterializeResult:
    """Move `champion` to the candidate when the evaluation says promote; record who is champion now."""
    day = context.partition_key
    evaluation = warehouse.read_json(EVALUATION, day)
    version = evaluation["version"]
    previous = registry.champion_version()
    if evaluation["promote"]:
        registry.promote(version, evaluation["decision"])
    champion = registry.champion_version()
    payload = {
        "candidate_version": version,
        "promoted": evaluation["promote"],
        "champion_version": champion,
        "previous_champion": previous,
        "reasons": evaluation["reasons"],
    }
    warehouse.write_json(PROMOTION, day, payload)
    return dg.MaterializeResult(
        metadata={
            "promoted": evaluation["promote"],
            "candidate_version": version,
            "champion_version": champion,
            "previous_champion": previous,
            "alias": "champion" if evaluation["promote"] else "challenger",
            "reasons": reasons_md(evaluation["reasons"], "no reason given"),
            "mlflow_model": dg.MetadataValue.url(registry.model_url(champion or version)),
        }
    )


def build_model_assets(partitions: dg.PartitionsDefinition, window_days: int = 28) -> list:
    """The model assets on `partitions`; `window_days` is the window drawn in the lineage graph and used
    when the run's config leaves it unset."""

    @dg.asset(
        name=TRAINING_SET,
        partitions_def=partitions,
        group_name="model",
        kinds={"polars", "parquet"},
        deps=[
            dg.AssetDep(
                VALID,
                partition_mapping=dg.TimeWindowPartitionMapping(
                    start_offset=-(window_days - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
                ),
            ),
            dg.AssetDep(FEATURES),  # the newest day's features pass the sanity check before training on it
        ],
        description="Valid trips of the rolling window ending with the partition's day.",
    )
    def training_set_asset(
        context: dg.AssetExecutionContext, config: WindowConfig, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        return training_set(context, config, warehouse, default_window=window_days)

    candidate_asset = dg.asset(
        name=CANDIDATE,
        partitions_def=partitions,
        group_name="model",
        kinds={"lightgbm", "mlflow"},
        deps=[TRAINING_SET],
        description="A model trained, calibrated and tested on the window; logged to MLflow and registered "
        "as `challenger` (not promoted here). Its monitoring reference is saved beside it.",
    )(candidate_model)

    evaluation_asset = dg.asset(
        name=EVALUATION,
        partitions_def=partitions,
        group_name="model",
        deps=[CANDIDATE],
        description="The candidate against the champion on the same test window, and its calibration.",
    )(model_evaluation)

    promotion_asset = dg.asset(
        name=PROMOTION,
        partitions_def=partitions,
        group_name="model",
        kinds={"mlflow"},
        # after the day's served predictions are recorded: the monitors judge the model that served the day
        deps=[EVALUATION, "served_predictions"],
        description="Moves the `champion` alias to the candidate when the gate says so. Runs only after the "
        "blocking calibration check on the evaluation passed.",
    )(champion_promotion)

    return [training_set_asset, candidate_asset, evaluation_asset, promotion_asset]
