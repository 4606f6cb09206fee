"""The Evidently part of the daily monitor: drift of the model's inputs, predictions and residuals on the day's
(sampled) monitoring frame against the model's reference sample, as one report whose tests are the decision.

The report's tests are exactly the rules `drift_decision.summarize_drift` applies, with the methods and
thresholds of `DriftSettings`: one dataset-level test on the share of drifted inputs (Evidently's
`DriftedColumnsCount`, `drift_share`), and one per prediction, residual and weather column (`ValueDrift`).
Inputs carry no test of their own: one input drifting alone decides nothing (a day has one weather, the
reference several), so a per-input test would fail on ordinary days while the decision says no drift. The
report opens with the decision; the summary is read back from Evidently's own `Snapshot.dict()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from models.drift_decision import ColumnDrift, DriftSummary, summarize_drift, verdict_markdown
from models.drift_reference import (
    CATEGORICAL_INPUTS,
    NUMERIC_INPUTS,
    PREDICTION_COLUMNS,
    RESIDUAL_COLUMN,
    DriftReference,
    DriftSettings,
    sample_rows,
)

# (column, kind, Evidently type "num"/"cat", method, threshold): one judged column of the day
PlannedColumn = tuple[str, str, str, str, float]


def column_plan(
    current: pl.DataFrame, reference: pl.DataFrame, settings: DriftSettings
) -> list[PlannedColumn]:
    """Every column judged today, with its method and threshold, among those both sides have values of."""
    plan: list[PlannedColumn] = []
    for column in NUMERIC_INPUTS:
        plan.append((column, "input", "num", settings.numeric_method, settings.numeric_threshold))
    for column in CATEGORICAL_INPUTS:
        plan.append((column, "input", "cat", settings.categorical_method, settings.categorical_threshold))
    for column in PREDICTION_COLUMNS:
        plan.append((column, "prediction", "num", settings.numeric_method, settings.prediction_threshold))
    if RESIDUAL_COLUMN in current.columns and RESIDUAL_COLUMN in reference.columns:
        plan.append(
            (RESIDUAL_COLUMN, "residual", "num", settings.numeric_method, settings.residual_threshold)
        )
    if settings.weather_column:
        plan.append(
            (settings.weather_column, "weather", "num", settings.weather_method, settings.weather_threshold)
        )
    return [
        p
        for p in plan
        if p[0] in current.columns
        and current[p[0]].drop_nulls().len() > 0
        and reference[p[0]].drop_nulls().len() > 0
    ]


def drift_metrics(plan: list[PlannedColumn], drift_share: float) -> list:
    """Evidently metrics for `plan`: the share of drifted inputs (tested), then one `ValueDrift` per column
    (tested except for inputs)."""
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    inputs = [p for p in plan if p[1] == "input"]
    metrics: list = []
    if inputs:
        metrics.append(
            DriftedColumnsCount(
                columns=[p[0] for p in inputs],
                per_column_method={p[0]: p[3] for p in inputs},
                per_column_threshold={p[0]: p[4] for p in inputs},
                drift_share=drift_share,
            )
        )
    for column, kind, _, method, threshold in plan:
        tests = [] if kind == "input" else None  # None: Evidently's drift test, with this method/threshold
        metrics.append(ValueDrift(column=column, method=method, threshold=threshold, tests=tests))
    return metrics


def read_columns(body: dict[str, Any], plan: list[PlannedColumn]) -> tuple[list[ColumnDrift], dict]:
    """Per-column results from Evidently's `Snapshot.dict()` (or the same shape built in a container), and
    the dataset-level result: {"count", "share", "failed"} of `DriftedColumnsCount` ({} without inputs).

    A tested column drifted when its Evidently test failed; an untested input when its score reaches the
    threshold (the rule of the distances used for inputs), which must add up to Evidently's own count.
    """
    failed = {
        t["metric_config"]["metric_id"]: t["status"] == "FAIL"
        for t in body.get("tests", [])
        if t.get("metric_config", {}).get("metric_id")
    }
    scores: dict[tuple[str, str], tuple[float, bool | None]] = {}
    dataset: dict[str, object] = {}
    for metric in body["metrics"]:
        config = metric["config"]
        kind = config.get("type", "")
        if kind.endswith(":ValueDrift"):
            scores[config["column"], config["method"]] = (float(metric["value"]), failed.get(metric["id"]))
        elif kind.endswith(":DriftedColumnsCount"):
            value = metric["value"]
            dataset = {
                "count": int(value["count"]),
                "share": float(value["share"]),
                "failed": failed[metric["id"]],
            }
    columns = []
    for column, kind, _, method, threshold in plan:
        score, verdict = scores[column, method]
        drifted = score >= threshold if kind == "input" else bool(verdict)
        columns.append(ColumnDrift(column, kind, method, threshold, score, drifted))
    counted = sum(c.drifted for c in columns if c.kind == "input")
    if dataset and counted != dataset["count"]:
        raise RuntimeError(f"Evidently counted {dataset['count']} drifted inputs, the thresholds {counted}")
    return columns, dataset


def _summary(
    body: dict[str, Any], plan: list[PlannedColumn], settings: DriftSettings, rows: tuple[int, int, int]
) -> DriftSummary:
    """The decision from Evidently's results; it must be what the report's tests say."""
    columns, dataset = read_columns(body, plan)
    summary = summarize_drift(columns, *rows, settings)
    tests_failed = any(t["status"] == "FAIL" for t in body.get("tests", []))
    if summary.trigger != tests_failed or summary.dataset_drift != bool(dataset.get("failed")):
        raise RuntimeError(f"the report's tests and the decision disagree: {summary.reasons}")
    return summary


@dataclass
class DriftRun:
    """One day's Evidently snapshot and the decision read back from it."""

    snapshot: Any  # evidently.core.report.Snapshot
    summary: DriftSummary


@cache
def _container_class():
    """`DailyDrift`, defined once (Evidently registers every container subclass it sees)."""
    from evidently.core.container import MetricContainer
    from evidently.legacy.renderers.html_widgets import table_data, text_widget

    class DailyDrift(MetricContainer):
        """The day's report as one Evidently container: `drift_metrics`, rendered after the decision."""

        plan: list[tuple[str, str, str, str, float]]
        settings: dict[str, Any]
        rows: tuple[int, int, int]

        def generate_metrics(self, context):
            return drift_metrics(self.plan, self.settings["drift_share"])

        def render(self, context, child_widgets=None):
            metrics = self.metrics(context)
            results = [context.get_metric_result(m) for m in metrics]
            body = {
                "metrics": [r.to_dict() for r in results],
                "tests": [t.dict() for r in results for t in r.tests],
            }
            settings = DriftSettings(**self.settings)
            summary = _summary(body, self.plan, settings, self.rows)
            widgets = dict(child_widgets or [])
            by_column = {(c.column, c.method): c for c in summary.columns}
            table = table_data(
                title="Inputs (each drifted input counts towards the share; none decides alone)",
                column_names=["column", "method", "threshold", "score", "drifted"],
                data=[
                    [c.column, c.method, c.threshold, f"{c.score:.3f}", "yes" if c.drifted else ""]
                    for c in summary.columns
                    if c.kind == "input"
                ],
            )
            verdict = text_widget(
                title="Drift decision", text=verdict_markdown(summary, settings.drift_share)
            )
            dataset = [m for m in metrics if type(m).__name__ == "DriftedColumnsCount"]
            shown = [verdict, *(w for m in dataset for w in widgets.get(m.metric_id, [])), table]
            # the distributions behind the decision: every tested column, then the inputs that drifted
            drifts = [m for m in metrics if type(m).__name__ == "ValueDrift"]
            tested = [m for m in drifts if by_column[m.column, m.method].kind != "input"]
            moved = [m for m in drifts if m not in tested and by_column[m.column, m.method].drifted]
            return shown + [w for m in tested + moved for w in widgets.get(m.metric_id, [])]

    return DailyDrift


def run_report(
    current: pl.DataFrame, reference: DriftReference, settings: DriftSettings = DriftSettings()
) -> DriftRun:
    """Evidently on the day's (sampled) monitoring frame vs the model's reference sample."""
    from evidently import DataDefinition, Dataset, Report

    sampled = sample_rows(current, settings.current_sample, settings.seed)
    plan = column_plan(sampled, reference.sample, settings)
    if not plan:
        raise ValueError("no column has values on both sides: nothing to compare")
    numeric = list(dict.fromkeys(p[0] for p in plan if p[2] == "num"))
    categorical = list(dict.fromkeys(p[0] for p in plan if p[2] == "cat"))
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    datasets = [
        Dataset.from_pandas(frame.select(numeric + categorical).to_pandas(), data_definition=definition)
        for frame in (sampled, reference.sample)
    ]
    rows = (current.height, sampled.height, reference.rows)
    container = _container_class()(plan=plan, settings=settings.as_dict(), rows=rows)
    report = Report([container], include_tests=True)
    # the dataset-drift metric correlates every pair of columns; a column constant that day (dry weather)
    # divides by a zero spread there, which numpy warns about and the drift scores never use
    with np.errstate(invalid="ignore", divide="ignore"):
        snapshot = report.run(datasets[0], datasets[1])  # Evidently 0.7: current first, then reference
    return DriftRun(snapshot, _summary(snapshot.dict(), plan, settings, rows))


def data_drift(
    current: pl.DataFrame,
    reference: DriftReference,
    settings: DriftSettings = DriftSettings(),
    html_path: Path | None = None,
) -> DriftSummary:
    """The day's drift decision; with `html_path`, its Evidently report saved there (self-contained)."""
    from models.drift_html import compact_html

    run = run_report(current, reference, settings)
    if html_path is None:
        return run.summary
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(compact_html(run.snapshot.get_html_str(as_iframe=False)), encoding="utf-8")
    run.summary.report_path = str(html_path)
    return run.summary
