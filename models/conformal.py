"""Conformal calibration of predicted quantiles (asymmetric CQR, Romano, Patterson & Candès 2019).

Why hand-rolled rather than MAPIE: MAPIE's `ConformalizedQuantileRegressor` calibrates one interval level per
estimator triple and keeps the estimators as pickles; we need every trained quantile level calibrated (so the
serving path can offer any window from 50% to 90% and sample the quantile function for multi-stop routes),
per-segment (Mondrian) offsets, and offsets shipped as plain numbers inside the model artifact. The core is
one order statistic per level, checked against MAPIE's asymmetric CQR in the tests.

For each quantile level t, on a calibration window that follows training in time, take residuals
r_i = y_i - q_t(x_i) (in log-duration space, so offsets are multiplicative) and shift the quantile by
  delta_t = r_(ceil((n + 1) t))   for t >= 0.5  -> P(y <= q_t + delta_t) >= t
  delta_t = r_(floor((n + 1) t))  for t <  0.5  -> P(y <  q_t + delta_t) <= t
so the central interval (q_{(1-L)/2}, q_{(1+L)/2}) covers at least L of exchangeable new legs (the
asymmetric CQR guarantee). Offsets are computed per segment (distance band x hour band) where the segment
has enough calibration legs, falling back to the global offset otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

GLOBAL = "__global__"


def conformal_offset(residuals: np.ndarray, q: float) -> float:
    """The split-conformal shift of quantile level `q` from calibration residuals y - q_hat."""
    ordered = np.sort(np.asarray(residuals, dtype=float))
    n = len(ordered)
    if n == 0:
        raise ValueError("no calibration residuals: the calibration window is empty")
    rank = math.ceil((n + 1) * q) if q >= 0.5 else math.floor((n + 1) * q)
    if rank > n:
        return float("inf")  # too few calibration points to guarantee this level
    if rank < 1:
        return float("-inf")
    return float(ordered[rank - 1])


def rearrange(q_pred: np.ndarray) -> np.ndarray:
    """Monotone quantiles per row by sorting (Chernozhukov, Fernández-Val & Galichon 2010)."""
    return np.sort(q_pred, axis=1)


@dataclass
class ConformalCalibration:
    """Additive offsets (in the model's target space) per quantile level, globally and per segment."""

    quantiles: list[float]
    global_offsets: list[float]
    segment_offsets: dict[str, list[float]] = field(default_factory=dict)
    segment_counts: dict[str, int] = field(default_factory=dict)
    min_segment_size: int = 500
    n_calibration: int = 0

    def offsets_for(self, segments: Sequence[str] | np.ndarray | None, n: int) -> np.ndarray:
        """(n, k) offsets: each row gets its segment's offsets, or the global ones."""
        base = np.tile(np.asarray(self.global_offsets, dtype=float), (n, 1))
        if segments is None or not self.segment_offsets:
            return base
        segments = np.asarray(segments, dtype=object)
        for key, offsets in self.segment_offsets.items():
            mask = segments == key
            if mask.any():
                base[mask] = offsets
        return base

    def apply(self, q_pred: np.ndarray, segments: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
        """Calibrated, non-crossing quantiles."""
        return rearrange(q_pred + self.offsets_for(segments, q_pred.shape[0]))

    def to_dict(self) -> dict[str, object]:
        return {
            "method": "asymmetric_cqr_per_level",
            "quantiles": self.quantiles,
            "global_offsets": self.global_offsets,
            "segment_offsets": self.segment_offsets,
            "segment_counts": self.segment_counts,
            "min_segment_size": self.min_segment_size,
            "n_calibration": self.n_calibration,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ConformalCalibration:
        return cls(
            quantiles=[float(q) for q in data["quantiles"]],
            global_offsets=[float(v) for v in data["global_offsets"]],
            segment_offsets={k: [float(v) for v in vs] for k, vs in data.get("segment_offsets", {}).items()},
            segment_counts={k: int(v) for k, v in data.get("segment_counts", {}).items()},
            min_segment_size=int(data.get("min_segment_size", 500)),
            n_calibration=int(data.get("n_calibration", 0)),
        )


def fit_conformal(
    y: np.ndarray,
    q_pred: np.ndarray,
    quantiles: Sequence[float],
    segments: Sequence[str] | np.ndarray | None = None,
    min_segment_size: int = 500,
) -> ConformalCalibration:
    """Offsets from a calibration window: y and q_pred in the same (target) space, q_pred uncalibrated."""
    y = np.asarray(y, dtype=float)
    residuals = y[:, None] - q_pred
    global_offsets = [conformal_offset(residuals[:, i], q) for i, q in enumerate(quantiles)]
    calibration = ConformalCalibration(
        quantiles=[float(q) for q in quantiles],
        global_offsets=global_offsets,
        min_segment_size=min_segment_size,
        n_calibration=len(y),
    )
    if segments is None:
        return calibration
    segments = np.asarray(segments, dtype=object)
    keys, counts = np.unique(segments, return_counts=True)
    for key, count in zip(keys, counts, strict=True):
        calibration.segment_counts[str(key)] = int(count)
        if count < min_segment_size:
            continue
        mask = segments == key
        calibration.segment_offsets[str(key)] = [
            conformal_offset(residuals[mask, i], q) for i, q in enumerate(quantiles)
        ]
    return calibration
