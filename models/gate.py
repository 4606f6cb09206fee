"""The promotion gate: a pure decision whether a challenger may replace the champion."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GateConfig:
    """A challenger must be calibrated and must not be worse than the champion on the same recent window."""

    levels: tuple[float, ...] = (0.8, 0.9)
    coverage_tolerance: float = 0.03  # |empirical - nominal| allowed, per level
    pinball_tolerance: float = 0.0  # relative: 0.01 lets a challenger be 1% worse on mean pinball loss


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    challenger: Mapping[str, float] = field(default_factory=dict)  # on its whole test window
    champion: Mapping[str, float] | None = None  # on the comparison window
    challenger_on_window: Mapping[str, float] | None = None  # the challenger on the comparison window
    window: str | None = None  # the days both were compared on
    # the calibration verdict, the one place it is decided: empirical - nominal coverage per level ("80")
    coverage_gaps: Mapping[str, float] = field(default_factory=dict)
    coverage_tolerance: float = GateConfig.coverage_tolerance
    calibrated: bool = True

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _coverage_key(level: float) -> str:
    return f"coverage_{round(level * 100)}"


def promotion_decision(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    config: GateConfig = GateConfig(),
    challenger_on_window: Mapping[str, float] | None = None,
    window: str | None = None,
) -> GateDecision:
    """Calibration is judged on the challenger's whole test window (`challenger`); the comparison with the
    champion on `window`, labelled legs neither has seen: `champion` and `challenger_on_window` (the
    challenger's own metrics there, default `challenger`). Keys as in `summary_metrics`."""
    reasons: list[str] = []
    gaps: dict[str, float] = {}
    for level in config.levels:
        key = _coverage_key(level)
        if key not in challenger:
            raise KeyError(f"challenger metrics lack {key}; evaluate it at level {level}")
        gap = gaps[str(round(level * 100))] = challenger[key] - level
        if abs(gap) > config.coverage_tolerance:
            reasons.append(
                f"challenger {round(level * 100)}% coverage {challenger[key]:.3f} is off nominal by {gap:+.3f} "
                f"(tolerance {config.coverage_tolerance})"
            )
    calibrated = all(abs(gap) <= config.coverage_tolerance for gap in gaps.values())
    verdict = {
        "coverage_gaps": gaps,
        "coverage_tolerance": config.coverage_tolerance,
        "calibrated": calibrated,
    }
    if champion is None:
        if calibrated:
            reasons.append("no champion yet and the challenger is calibrated")
        return GateDecision(
            promote=calibrated, reasons=reasons, challenger=dict(challenger), champion=None, **verdict
        )
    compared = challenger if challenger_on_window is None else challenger_on_window
    limit = champion["pinball_mean"] * (1.0 + config.pinball_tolerance)
    better = compared["pinball_mean"] <= limit
    comparison = f"mean pinball {compared['pinball_mean']:.4f} vs champion {champion['pinball_mean']:.4f}"
    if window:
        comparison += f" on {window}"
    reasons.append(("not worse: " if better else "worse: ") + comparison)
    return GateDecision(
        promote=calibrated and better,
        reasons=reasons,
        challenger=dict(challenger),
        champion=dict(champion),
        challenger_on_window=None if challenger_on_window is None else dict(challenger_on_window),
        window=window,
        **verdict,
    )
