"""Daily drift and performance monitoring of the served ETA model, as plain functions (Evidently 0.7).

What a day is compared with: the *reference* of the model that served it — its test window, scored the way
serving scores (frozen aggregates, calibrated quantiles), labels included. The reference is built once per
model (`build_reference`, saved beside the model's pipeline outputs) and reused for every day it serves:
a fixed, seeded sample of `reference_sample` rows for Evidently (which needs values, not moments) and the
per-segment coverage counts of the whole window.

Per day (`monitoring_frame` of the served legs):
- data drift of the model's inputs, prediction drift (log median, log 80% width) and, once labels arrive,
  residual drift (log actual - log median), each column with a *fixed* method and threshold
  (`DriftSettings`): Evidently would otherwise switch from statistical tests to distances at 1,000 rows,
  so the same shift would be judged differently on a quiet and a busy day;
- coverage decay: empirical 80% / 90% coverage of the served intervals on the day's completed trips,
  overall and per origin area, against the reference's coverage of the same area (two-proportion z-test).

Large days are sampled to `current_sample` rows (seeded) before Evidently runs; coverage uses every leg (a
vectorised count), so a day of a million trips is checked in seconds.

The parts live in `drift_reference` (watched columns, settings, the monitoring frame, the reference),
`drift_decision` (the rules and the verdict text), `drift_report` (the Evidently report whose tests are those
rules), `drift_html` (its compact self-contained HTML) and `drift_coverage` (coverage decay); this module
is the one the pipelines import.
"""

from models.drift_coverage import (
    CoverageSummary,
    area_decay,
    coverage_decay,
    one_sample_drop_z,
    proportion_drop_z,
)
from models.drift_decision import ColumnDrift, DriftSummary, summarize_drift, verdict_markdown
from models.drift_reference import (
    CATEGORICAL_INPUTS,
    NUMERIC_INPUTS,
    PREDICTION_COLUMNS,
    REFERENCE_META_FILE,
    REFERENCE_SAMPLE_FILE,
    RESIDUAL_COLUMN,
    SEGMENT_COLUMN,
    DriftReference,
    DriftSettings,
    build_reference,
    level_tag,
    monitoring_frame,
    sample_rows,
    segment_counts,
)
from models.drift_report import DriftRun, column_plan, data_drift, run_report

__all__ = [
    "CATEGORICAL_INPUTS",
    "NUMERIC_INPUTS",
    "PREDICTION_COLUMNS",
    "REFERENCE_META_FILE",
    "REFERENCE_SAMPLE_FILE",
    "RESIDUAL_COLUMN",
    "SEGMENT_COLUMN",
    "ColumnDrift",
    "CoverageSummary",
    "DriftReference",
    "DriftRun",
    "DriftSettings",
    "DriftSummary",
    "area_decay",
    "build_reference",
    "column_plan",
    "coverage_decay",
    "data_drift",
    "level_tag",
    "monitoring_frame",
    "one_sample_drop_z",
    "proportion_drop_z",
    "run_report",
    "sample_rows",
    "segment_counts",
    "summarize_drift",
    "verdict_markdown",
]
