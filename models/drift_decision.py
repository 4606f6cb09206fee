"""The day's drift decision from per-column results, and the same decision as the text a report opens with.

Pure logic, no Evidently: `drift_report` feeds it the scores and test results Evidently computed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from models.drift_reference import DriftSettings


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


def summarize_drift(
    columns: list[ColumnDrift],
    rows: int,
    sampled_rows: int,
    reference_rows: int,
    settings: DriftSettings,
    report_path: object | None = None,
) -> DriftSummary:
    """The day's drift flags and whether they ask for retraining, from per-column results.

    Inputs count together (the day drifts when `drift_share` of them do: one input alone, such as the day's
    weather, does not); every prediction, residual and weather column triggers on its own.
    """
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


def verdict_markdown(summary: DriftSummary, drift_share: float) -> str:
    """The decision as a report's opening text: retrain or not, why, and every rule with its number."""
    inputs = [c for c in summary.columns if c.kind == "input"]
    drifted_inputs = [c.column for c in inputs if c.drifted]
    heading = "Retrain: yes" if summary.trigger else "Retrain: no, no drift"
    lines = [f"### {heading}", ""]
    lines += [f"- **{reason}**" for reason in summary.reasons]
    lines += [
        f"- Day: {summary.rows:,} served legs"
        + ("" if summary.sampled_rows == summary.rows else f" ({summary.sampled_rows:,} sampled, seeded)")
        + f", against the serving model's reference (its test window, {summary.reference_rows:,} legs).",
        "",
        "The rules, as the report's Tests tab checks them:",
        "",
        f"- inputs together: {len(drifted_inputs)} of {len(inputs)} drifted ({summary.drifted_share:.0%}); "
        f"the day drifts at {drift_share:.0%} or more"
        + (f" (drifted: {', '.join(drifted_inputs)})" if drifted_inputs else ""),
    ]
    for c in summary.columns:
        if c.kind != "input":
            state = "drifted" if c.drifted else "ok"
            lines.append(
                f"- {c.kind}, on its own: {c.column} {c.method} {c.score:.3f} (limit {c.threshold}): {state}"
            )
    lines += [
        "",
        "An input drifting alone is shown in the table below but decides nothing: a day has one weather "
        "and the reference several, so temperature and rain differ from the reference on most days. "
        "A storm is caught by the weather rule.",
    ]
    return "\n".join(lines)
