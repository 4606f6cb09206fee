"""Asset checks: the data contract, feature sanity, and the blocking calibration check on the candidate.

All three are blocking: a failed check stops the assets downstream of it in the same run, so a day that
breaks the contract is not trained on, and a miscalibrated candidate is never promoted. Each check is a
function of this module; `build_checks` only applies the decorators, with the partitions known at load time.
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


def contract_quarantine_share(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, max_share: float
) -> dg.AssetCheckResult:
    """At most `max_share` of the day's rows quarantined (a day with no rows at all only warns)."""
    day = context.partition_key
    quarantine = warehouse.read_table(QUARANTINE, day)
    valid_rows = _rows(warehouse.path(VALID, day))
    share = quarantine_share(valid_rows, quarantine.height)
    reasons = dict(quarantine["reason"].value_counts().iter_rows()) if quarantine.height else {}
    if valid_rows + quarantine.height == 0:  # nothing to quarantine is not a clean day: the feed is silent
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,  # a warning: it does not block, the window skips the day
            description=f"{day} has no trips at all: did the source deliver this day?",
            metadata={"valid": 0, "quarantined": 0},
        )
    return dg.AssetCheckResult(
        passed=share <= max_share,
        metadata={
            **shown({"quarantine_share": share}),
            "max_share": max_share,
            "quarantined": quarantine.height,
            "valid": valid_rows,
            "reasons": counts_table(reasons, "reason", valid_rows + quarantine.height),
        },
    )


# The day's feature table against `feature_problems`, and the share of legs with origin history. (The check
# functions Dagster wraps carry comments, not docstrings: a check's op takes its docstring as description.)
def feature_sanity(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
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


# The gate's calibration verdict on the candidate, as the evaluation stored it (models.gate).
def candidate_calibration(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    evaluation = warehouse.read_json(EVALUATION, context.partition_key)
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


def build_checks(partitions: dg.PartitionsDefinition, max_quarantine_share: float = 0.05) -> list:
    """The blocking checks on `partitions`; a day may quarantine up to `max_quarantine_share` of its rows."""

    @dg.asset_check(
        name="contract_quarantine_share",
        asset=VALID,
        blocking=True,
        partitions_def=partitions,
        description=f"At most {max_quarantine_share:.0%} of the day's rows quarantined; the reasons as metadata.",
    )
    def quarantine_check(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        return contract_quarantine_share(context, warehouse, max_share=max_quarantine_share)

    features_check = dg.asset_check(
        asset=FEATURES,
        blocking=True,
        partitions_def=partitions,
        description="One feature row per valid trip, unique ids, geometry and clock features in range.",
    )(feature_sanity)

    calibration_check = dg.asset_check(
        asset=EVALUATION,
        blocking=True,
        partitions_def=partitions,
        description="The candidate's 80% and 90% coverage on its test window lie within the gate's tolerance "
        "of nominal; blocking, so a miscalibrated model is never promoted.",
    )(candidate_calibration)

    return [quarantine_check, features_check, calibration_check]
