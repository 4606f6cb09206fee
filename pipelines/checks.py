"""Asset checks: the data contract, feature sanity, and the blocking calibration check on the candidate.

All three are blocking: a failed check stops the assets downstream of it in the same run, so a day that
breaks the contract is not trained on, and a miscalibrated candidate is never promoted.
"""

import dagster as dg
import numpy as np
import polars as pl

from pipelines.assets_ingest import FEATURES, QUARANTINE, VALID
from pipelines.assets_model import EVALUATION
from pipelines.metadata import counts_table, reasons_md, shown
from pipelines.resources import Warehouse

# (column, lowest, highest) every feature row must respect; NaN or null fails too
FEATURE_RANGES: tuple[tuple[str, float, float], ...] = (
    ("haversine_km", 0.0, 500.0),
    ("bearing_sin", -1.0, 1.0),
    ("bearing_cos", -1.0, 1.0),
    ("local_hour", 0, 23),
    ("minute_of_day", 0, 1439),
    ("hour_sin", -1.0, 1.0),
    ("hour_cos", -1.0, 1.0),
    ("weekday", 1, 7),
    ("is_weekend", 0, 1),
    ("is_holiday", 0, 1),
    ("duration_s", 1e-9, np.inf),
)


def feature_problems(features: pl.DataFrame, valid_rows: int) -> list[str]:
    """What is wrong with a day's feature table (empty when it is sane)."""
    problems = []
    if features.height != valid_rows:
        problems.append(f"{features.height} feature rows for {valid_rows} valid trips")
    if features["trip_id"].n_unique() != features.height:
        problems.append("trip_id is not unique")
    for column, low, high in FEATURE_RANGES:
        values = features[column].cast(pl.Float64)
        bad = values.is_null() | values.is_nan() | (values < low) | (values > high)
        count = int(bad.sum())
        if count:
            problems.append(f"{column}: {count} value(s) missing or outside [{low}, {high}]")
    return problems


def quarantine_share(valid_rows: int, quarantined_rows: int) -> float:
    total = valid_rows + quarantined_rows
    return quarantined_rows / total if total else 0.0


def _rows(path) -> int:
    return pl.scan_parquet(path).select(pl.len()).collect().item()


def build_checks(partitions: dg.PartitionsDefinition, max_quarantine_share: float = 0.05) -> list:
    @dg.asset_check(
        asset=VALID,
        blocking=True,
        partitions_def=partitions,
        description=f"At most {max_quarantine_share:.0%} of the day's rows quarantined; the reasons as metadata.",
    )
    def contract_quarantine_share(context: dg.AssetCheckExecutionContext, warehouse: Warehouse):
        day = context.partition_key
        quarantine = warehouse.read_table(QUARANTINE, day)
        valid_rows = _rows(warehouse.path(VALID, day))
        share = quarantine_share(valid_rows, quarantine.height)
        reasons = dict(quarantine["reason"].value_counts().iter_rows()) if quarantine.height else {}
        if (
            valid_rows + quarantine.height == 0
        ):  # nothing to quarantine is not a clean day: the feed is silent
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,  # a warning: it does not block, the window skips the day
                description=f"{day} has no trips at all: did the source deliver this day?",
                metadata={"valid": 0, "quarantined": 0},
            )
        return dg.AssetCheckResult(
            passed=share <= max_quarantine_share,
            metadata={
                **shown({"quarantine_share": share}),
                "max_share": max_quarantine_share,
                "quarantined": quarantine.height,
                "valid": valid_rows,
                "reasons": counts_table(reasons, "reason", valid_rows + quarantine.height),
            },
        )

    @dg.asset_check(
        asset=FEATURES,
        blocking=True,
        partitions_def=partitions,
        description="One feature row per valid trip, unique ids, geometry and clock features in range.",
    )
    def feature_sanity(context: dg.AssetCheckExecutionContext, warehouse: Warehouse):
        day = context.partition_key
        features = warehouse.read_table(FEATURES, day)
        problems = feature_problems(features, _rows(warehouse.path(VALID, day)))
        history = float((features["origin_trips"] > 0).mean()) if features.height else 0.0
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "problems": reasons_md(problems, "none"),
                "rows": features.height,
                **shown({"share_with_origin_history": history}),
            },
        )

    @dg.asset_check(
        asset=EVALUATION,
        blocking=True,
        partitions_def=partitions,
        description="The candidate's 80% and 90% coverage on its test window lie within the gate's tolerance "
        "of nominal; blocking, so a miscalibrated model is never promoted.",
    )
    def candidate_calibration(context: dg.AssetCheckExecutionContext, warehouse: Warehouse):
        evaluation = warehouse.read_json(
            EVALUATION, context.partition_key
        )  # the gate's verdict (models.gate)
        gaps = evaluation["coverage_gaps"]
        tolerance = evaluation["coverage_tolerance"]
        return dg.AssetCheckResult(
            passed=evaluation["calibrated"],
            metadata={
                "candidate_version": evaluation["version"],
                "coverage_tolerance": tolerance,
                **shown({f"coverage_gap_{k}": v for k, v in gaps.items()}),
            },
        )

    return [contract_quarantine_share, feature_sanity, candidate_calibration]
