"""A leg in progress: its remaining time given that it has run `elapsed_s`, and the risk that it misses a
promised moment. Pure functions of the calibrated quantiles a model predicts, then calibrated themselves.

The distribution. Between the trained levels the quantile function is linear in log-seconds, as the
service interpolates it (`models.bundle.quantiles_at`). Beyond the highest level tau_K the tail is a power
law that continues the last segment in (log t, -log(1 - tau)): S(t) = (1 - tau_K) (t / q_K)^(-1/s), with s
the slope of the last segment there, so it falls as steeply as the trained tail does. Below the lowest level
log t keeps the first segment's slope down to tau = 0.

Conditioning. A leg still running after e seconds has S(t | T > e) = S(t) / S(e): its remaining-time
quantile at level u is Q(F(e) + u (1 - F(e))) - e, never negative and never crossing, and equal to the
unconditioned answer at e = 0. The probability of ending after a promised moment m is S(m) / S(e) (1 when
m <= e): it grows as the promise gets closer and, past the median, as the leg runs longer.

Calibration (`fit_enroute`): on the calibration window, snapshots of the legs still running at 0.5, 1, 1.5
and 2 times their predicted median get conformal offsets for their remaining-time intervals (symmetric
CQR in seconds, per checkpoint), and the late probability gets an isotonic map (scikit-learn) fitted on
the outcomes of promises at the 80% and 90% window ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.conformal import conformal_offset, interval_pairs

CHECKPOINTS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)  # elapsed / predicted median, calibrated at
PROMISE_LEVELS: tuple[float, ...] = (0.8, 0.9)  # promises at these windows' ends calibrate the late risk
MIN_REMAINING_S = 1.0  # no remaining quantile is shorter (a window is interpolated in log-seconds)
TAIL_TAU = 1 - 1e-4  # expected lateness integrates the quantile function up to this level
GRID = 400  # points of that integral


def _knots(q: np.ndarray, quantiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(taus, log q) per row with the lower tail extended to tau = 0."""
    taus = np.asarray(quantiles, dtype=float)
    logs = np.log(np.maximum(q, 1e-9))
    slope = (logs[:, 1] - logs[:, 0]) / (taus[1] - taus[0])
    floor = logs[:, 0] - taus[0] * slope
    return np.concatenate([[0.0], taus]), np.column_stack([floor, logs])


def _tail_slope(logs: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """s per row: d log t / d(-log(1 - tau)) on the last trained segment (at least a small positive)."""
    du = -np.log1p(-taus[-1]) + np.log1p(-taus[-2])
    return np.maximum((logs[:, -1] - logs[:, -2]) / du, 1e-6)


def cdf(q: np.ndarray, quantiles: Sequence[float], t: np.ndarray) -> np.ndarray:
    """F(t) per row of predicted quantiles `q` (n, k) at times `t` (n,) in seconds."""
    taus, logs = _knots(q, quantiles)
    x = np.log(np.maximum(np.asarray(t, dtype=float), 1e-9))
    rows = np.arange(len(x))
    # the segment [logs[j], logs[j + 1]] holding x (x below the floor: F = 0)
    j = np.clip((x[:, None] >= logs).sum(axis=1) - 1, 0, len(taus) - 2)
    low, high = logs[rows, j], logs[rows, j + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(high > low, (x - low) / (high - low), 1.0)
    inside = taus[j] + np.clip(w, 0.0, 1.0) * (taus[j + 1] - taus[j])
    s = _tail_slope(logs, taus)
    tail = 1 - (1 - taus[-1]) * np.exp(-np.maximum(x - logs[:, -1], 0.0) / s)
    out = np.where(x >= logs[:, -1], tail, np.where(x <= logs[:, 0], 0.0, inside))
    return np.clip(out, 0.0, 1.0)


def quantile(q: np.ndarray, quantiles: Sequence[float], tau: np.ndarray) -> np.ndarray:
    """Q(tau) per row (tau (n,) or (n, m)); the inverse of `cdf`."""
    taus, logs = _knots(q, quantiles)
    tau = np.asarray(tau, dtype=float)
    flat = tau.reshape(len(q), -1)
    rows = np.arange(len(q))[:, None]
    j = np.clip(np.searchsorted(taus, flat, side="right") - 1, 0, len(taus) - 2)
    w = np.clip((flat - taus[j]) / (taus[j + 1] - taus[j]), 0.0, 1.0)
    inside = logs[rows, j] * (1 - w) + logs[rows, j + 1] * w
    s = _tail_slope(logs, taus)[:, None]
    u = -np.log1p(-np.minimum(flat, 1 - 1e-12))
    tail = logs[:, -1:] + s * (u + np.log1p(-taus[-1]))
    return np.exp(np.where(flat > taus[-1], tail, inside)).reshape(tau.shape)


def remaining_quantiles(q: np.ndarray, quantiles: Sequence[float], elapsed: np.ndarray) -> np.ndarray:
    """(n, k): the remaining seconds at the trained levels for legs that have run `elapsed` seconds."""
    elapsed = np.maximum(np.asarray(elapsed, dtype=float), 0.0)
    f = np.where(elapsed > 0, cdf(q, quantiles, elapsed), 0.0)
    levels = f[:, None] + np.asarray(quantiles)[None, :] * (1 - f[:, None])
    total = quantile(q, quantiles, levels)
    return np.maximum(total - elapsed[:, None], MIN_REMAINING_S)


def late_probability(
    q: np.ndarray, quantiles: Sequence[float], elapsed: np.ndarray, promised: np.ndarray
) -> np.ndarray:
    """P(T > promised | T > elapsed), promised and elapsed in seconds from the departure."""
    elapsed = np.maximum(np.asarray(elapsed, dtype=float), 0.0)
    promised = np.asarray(promised, dtype=float)
    survive_e = 1 - np.where(elapsed > 0, cdf(q, quantiles, elapsed), 0.0)
    survive_m = 1 - cdf(q, quantiles, promised)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(survive_e > 0, survive_m / survive_e, 1.0)
    return np.where(promised <= elapsed, 1.0, np.clip(p, 0.0, 1.0))


def expected_lateness(
    q: np.ndarray, quantiles: Sequence[float], elapsed: np.ndarray, promised: np.ndarray
) -> np.ndarray:
    """E[(T - promised)+ | T > elapsed] in seconds: the quantile function integrated above the promise
    (up to TAIL_TAU: the power-law tail of a wide leg may have no finite mean)."""
    elapsed = np.maximum(np.asarray(elapsed, dtype=float), 0.0)
    already = np.maximum(
        elapsed - np.asarray(promised, dtype=float), 0.0
    )  # late by now, for a passed promise
    promised = np.maximum(np.asarray(promised, dtype=float), elapsed)
    f_e = np.where(elapsed > 0, cdf(q, quantiles, elapsed), 0.0)
    f_m = np.minimum(cdf(q, quantiles, promised), TAIL_TAU)
    # integrated in u = -log(1 - tau), where the tail is smooth: dtau = exp(-u) du
    u_low, u_top = -np.log1p(-f_m), -np.log1p(-TAIL_TAU)
    u = u_low[:, None] + np.linspace(0.0, 1.0, GRID + 1)[None, :] * (u_top - u_low)[:, None]
    over = np.maximum(quantile(q, quantiles, -np.expm1(-u)) - promised[:, None], 0.0) * np.exp(-u)
    integral = np.trapezoid(over, u, axis=1)
    return already + integral / np.maximum(1 - f_e, 1e-12)


@dataclass
class EnrouteCalibration:
    """Offsets for remaining-time intervals per elapsed checkpoint, and the late-probability map."""

    quantiles: list[float]
    checkpoints: list[float] = field(default_factory=lambda: list(CHECKPOINTS))
    offsets: list[list[float]] = field(default_factory=list)  # per checkpoint, per level (seconds)
    counts: list[int] = field(default_factory=list)  # calibration legs still running at each checkpoint
    risk_x: list[float] = field(default_factory=list)  # isotonic map: predicted -> calibrated probability
    risk_y: list[float] = field(default_factory=list)

    def checkpoint_of(self, elapsed: np.ndarray, median: np.ndarray) -> np.ndarray:
        """Per leg, the index of the nearest calibrated checkpoint (elapsed / predicted median)."""
        ratio = np.asarray(elapsed, dtype=float) / np.maximum(median, 1e-9)
        return np.abs(ratio[:, None] - np.asarray(self.checkpoints)[None, :]).argmin(axis=1)

    def remaining(self, q: np.ndarray, elapsed: np.ndarray) -> np.ndarray:
        """Calibrated remaining-time quantiles (n, k), sorted and non-negative."""
        raw = remaining_quantiles(q, self.quantiles, elapsed)
        median = q[:, len(self.quantiles) // 2]
        shift = np.asarray(self.offsets, dtype=float)[self.checkpoint_of(elapsed, median)]
        return np.maximum(np.sort(raw + shift, axis=1), MIN_REMAINING_S)

    def risk(self, q: np.ndarray, elapsed: np.ndarray, promised: np.ndarray) -> np.ndarray:
        """Calibrated probability of ending after `promised` (1 for a promise already passed: a certain miss,
        which the map fitted on open promises does not see)."""
        p = late_probability(q, self.quantiles, elapsed, promised)
        if not self.risk_x:
            return p
        passed = np.asarray(promised, dtype=float) <= np.maximum(np.asarray(elapsed, dtype=float), 0.0)
        return np.where(passed, 1.0, np.interp(p, self.risk_x, self.risk_y))

    def to_dict(self) -> dict[str, object]:
        return {
            "quantiles": self.quantiles,
            "checkpoints": self.checkpoints,
            "offsets": self.offsets,
            "counts": self.counts,
            "risk_x": self.risk_x,
            "risk_y": self.risk_y,
        }

    @classmethod
    def from_dict(cls, data: dict) -> EnrouteCalibration:
        return cls(
            **{k: data[k] for k in ("quantiles", "checkpoints", "offsets", "counts", "risk_x", "risk_y")}
        )


def snapshots(q: np.ndarray, y: np.ndarray, checkpoints: Sequence[float] = CHECKPOINTS):
    """For each checkpoint, the legs still running at checkpoint x their predicted median: (index, rows,
    elapsed)."""
    median = q[:, q.shape[1] // 2]
    for i, c in enumerate(checkpoints):
        elapsed = c * median
        running = np.flatnonzero(y > elapsed)
        yield i, running, elapsed[running]


def late_outcomes(q: np.ndarray, y: np.ndarray, quantiles: Sequence[float], checkpoints=CHECKPOINTS):
    """(predicted probability, missed) pairs: promises at the 80% and 90% window ends, judged at every
    checkpoint for the legs still running then."""
    from models.bundle import interval_from_quantiles

    preds, missed = [], []
    for level in PROMISE_LEVELS:
        _, promise = interval_from_quantiles(q, quantiles, level)
        for _, rows, elapsed in snapshots(q, y, checkpoints):
            preds.append(late_probability(q[rows], quantiles, elapsed, promise[rows]))
            missed.append(y[rows] > promise[rows])
    return np.concatenate(preds), np.concatenate(missed).astype(float)


def fit_enroute(q: np.ndarray, y: np.ndarray, quantiles: Sequence[float]) -> EnrouteCalibration:
    """The calibration on legs with calibrated quantiles `q` (seconds) and durations `y`."""
    from sklearn.isotonic import IsotonicRegression

    calibration = EnrouteCalibration([float(t) for t in quantiles])
    pairs = interval_pairs(quantiles)
    mid = len(quantiles) // 2
    for _, rows, elapsed in snapshots(q, y):
        remaining = remaining_quantiles(q[rows], quantiles, elapsed)
        left = y[rows] - elapsed
        offsets = [0.0] * len(quantiles)
        if len(rows) >= 50:
            offsets[mid] = conformal_offset(left - remaining[:, mid], 0.5)
            for lo, hi in pairs:
                score = np.maximum(remaining[:, lo] - left, left - remaining[:, hi])
                widen = conformal_offset(score, quantiles[hi] - quantiles[lo])
                offsets[lo], offsets[hi] = (-widen, widen) if np.isfinite(widen) else (0.0, 0.0)
        calibration.offsets.append([float(v) for v in offsets])
        calibration.counts.append(len(rows))
    predicted, missed = late_outcomes(q, y, quantiles)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(predicted, missed)
    calibration.risk_x = [float(v) for v in iso.X_thresholds_]
    calibration.risk_y = [float(v) for v in iso.y_thresholds_]
    return calibration


def risk_metrics(predicted: np.ndarray, missed: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Brier score, its skill against the base rate, and the expected calibration error (equal-width bins)."""
    base = float(np.mean(missed))
    brier = float(np.mean((predicted - missed) ** 2))
    reference = float(np.mean((base - missed) ** 2))
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(predicted, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(predicted[inside].mean() - missed[inside].mean())
    return {
        "late_base_rate": base,
        "late_brier": brier,
        "late_brier_skill": 1 - brier / reference if reference > 0 else 0.0,
        "late_ece": float(ece),
        "late_n": float(len(missed)),
    }


def reliability(predicted: np.ndarray, missed: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per bin of predicted probability: its mean, the observed rate and the count (a reliability diagram)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(predicted, edges[1:-1]), 0, bins - 1)
    return [
        {
            "bin_low": float(edges[b]),
            "predicted": float(predicted[which == b].mean()),
            "observed": float(missed[which == b].mean()),
            "n": int((which == b).sum()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def enroute_metrics(calibration: EnrouteCalibration, q: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """On labelled legs: 80% coverage and width of the remaining-time window at each checkpoint, and the
    calibrated late probability's Brier score, skill and calibration error (promises at the window ends)."""
    from models.metrics import interval

    metrics: dict[str, float] = {}
    for i, rows, elapsed in snapshots(q, y, calibration.checkpoints):
        c = f"{calibration.checkpoints[i]:g}x"
        remaining = calibration.remaining(q[rows], elapsed)
        left = y[rows] - elapsed
        lo, hi = interval(remaining, calibration.quantiles, 0.8)
        metrics[f"enroute_{c}_coverage_80"] = (
            float(np.mean((left >= lo) & (left <= hi))) if len(rows) else float("nan")
        )
        metrics[f"enroute_{c}_width_80_s"] = float(np.mean(hi - lo)) if len(rows) else float("nan")
        metrics[f"enroute_{c}_n"] = float(len(rows))
    predicted, missed = late_outcomes(q, y, calibration.quantiles, calibration.checkpoints)
    calibrated = (
        np.interp(predicted, calibration.risk_x, calibration.risk_y) if calibration.risk_x else predicted
    )
    metrics.update(risk_metrics(calibrated, missed))
    return metrics
