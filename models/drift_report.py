"""The Evidently part of the daily monitor: data drift of the model's inputs, prediction drift and residual
drift of the day's (sampled) monitoring frame against the model's reference sample, and the decision they
make."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from models.drift_reference import (
    CATEGORICAL_INPUTS,
    NUMERIC_INPUTS,
    PREDICTION_COLUMNS,
    RESIDUAL_COLUMN,
    DriftReference,
    DriftSettings,
    sample_rows,
)


@dataclass
class ColumnDrift:
    column: str
    kind: str  # input, prediction, residual or weather
    method: str
    threshold: float
    score: float
    drifted: bool

    @property
    def metric_name(self) -> str:
        """Unique within a summary: a column judged twice (weather) carries its method."""
        return f"{self.column}_{self.method}" if self.kind == "weather" else self.column


@dataclass
class DriftSummary:
    """The machine-readable result of one day's Evidently run."""

    rows: int
    sampled_rows: int
    reference_rows: int
    columns: list[ColumnDrift]
    drifted_share: float
    dataset_drift: bool
    prediction_drift: bool
    residual_drift: bool | None
    trigger: bool
    reasons: list[str]
    report_path: str | None = None

    def drifted(self, kind: str) -> list[str]:
        return [c.column for c in self.columns if c.kind == kind and c.drifted]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _column_plan(current: pl.DataFrame, reference: pl.DataFrame, settings: DriftSettings):
    """(column, kind, evidently type, method, threshold) for every column both sides have values of."""
    plan = []
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


def _evidently_scores(snapshot) -> dict[tuple[str, str], tuple[float, bool | None]]:
    """(column, method) -> (score, drifted per Evidently's own test) from `snapshot.dict()`."""
    body = snapshot.dict()
    verdict = {
        t["metric_config"]["metric_id"]: t["status"] == "FAIL"
        for t in body.get("tests", [])
        if t.get("metric_config", {}).get("metric_id")
    }
    scores = {}
    for metric in body["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"], config["method"]] = (float(metric["value"]), verdict.get(metric["id"]))
    return scores


def data_drift(
    current: pl.DataFrame,
    reference: DriftReference,
    settings: DriftSettings = DriftSettings(),
    html_path: Path | None = None,
) -> DriftSummary:
    """Evidently on the day's (sampled) monitoring frame vs the model's reference sample."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    sampled = sample_rows(current, settings.current_sample, settings.seed)
    plan = _column_plan(sampled, reference.sample, settings)
    if not plan:
        raise ValueError("no column has values on both sides: nothing to compare")
    numeric = list(dict.fromkeys(c for c, _, t, _, _ in plan if t == "num"))
    categorical = list(dict.fromkeys(c for c, _, t, _, _ in plan if t == "cat"))
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    columns = numeric + categorical
    datasets = [
        Dataset.from_pandas(frame.select(columns).to_pandas(), data_definition=definition)
        for frame in (sampled, reference.sample)
    ]
    report = Report(
        [ValueDrift(column=c, method=m, threshold=t) for c, _, _, m, t in plan], include_tests=True
    )
    snapshot = report.run(datasets[0], datasets[1])  # Evidently 0.7: current first, then reference
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))
    scores = _evidently_scores(snapshot)
    results = []
    for column, kind, _, method, threshold in plan:
        score, verdict = scores[column, method]
        drifted = bool(verdict) if verdict is not None else score >= threshold
        results.append(ColumnDrift(column, kind, method, threshold, score, drifted))
    return summarize_drift(results, current.height, sampled.height, reference.rows, settings, html_path)


def summarize_drift(
    columns: list[ColumnDrift],
    rows: int,
    sampled_rows: int,
    reference_rows: int,
    settings: DriftSettings,
    report_path: Path | None = None,
) -> DriftSummary:
    """The day's drift flags and whether they ask for retraining, from per-column results."""
    inputs = [c for c in columns if c.kind == "input"]
    share = sum(c.drifted for c in inputs) / len(inputs) if inputs else 0.0
    dataset_drift = bool(inputs) and share >= settings.drift_share
    prediction_drift = any(c.drifted for c in columns if c.kind == "prediction")
    residual = [c for c in columns if c.kind == "residual"]
    residual_drift = residual[0].drifted if residual else None
    reasons = []
    if dataset_drift:
        drifted = ", ".join(c.column for c in inputs if c.drifted)
        reasons.append(
            f"input drift: {share:.0%} of inputs drifted (>= {settings.drift_share:.0%}): {drifted}"
        )
    for c in columns:
        if c.kind != "input" and c.drifted:
            reasons.append(f"{c.kind} drift: {c.column} {c.method} {c.score:.3f} >= {c.threshold}")
    return DriftSummary(
        rows=rows,
        sampled_rows=sampled_rows,
        reference_rows=reference_rows,
        columns=columns,
        drifted_share=share,
        dataset_drift=dataset_drift,
        prediction_drift=prediction_drift,
        residual_drift=residual_drift,
        trigger=bool(reasons),
        reasons=reasons,
        report_path=str(report_path) if report_path else None,
    )
