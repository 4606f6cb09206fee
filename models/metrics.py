"""Evaluation of predicted quantiles: pure numpy/polars functions with hand-checkable definitions.

`q_pred` is always an (n, k) array of predicted quantiles in seconds, columns in the order of `quantiles`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from models.quantile import qtag

DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9)
MIN_SEGMENT_TRIPS = 200
# the metrics a person reads first (CLI table, results, notebooks)
HEADLINE_METRICS: tuple[str, ...] = (
    "mae_s",
    "mape_pct",
    "pinball_mean",
    "crps_s",
    "coverage_50",
    "coverage_80",
    "coverage_90",
    "width_80_s",
    "width_90_s",
    "late_rate_90",
)


def level_pair(level: float) -> tuple[float, float]:
    """The central interval of a coverage level: 0.8 -> (0.1, 0.9)."""
    tail = (1.0 - level) / 2.0
    return round(tail, 6), round(1.0 - tail, 6)


def quantile_column(quantiles: Sequence[float], q: float) -> int:
    """Index of quantile `q` in `quantiles` (exact match up to 1e-9)."""
    for i, value in enumerate(quantiles):
        if abs(value - q) < 1e-9:
            return i
    raise KeyError(f"quantile {q} is not among the model's levels {list(quantiles)}")


def interval(q_pred: np.ndarray, quantiles: Sequence[float], level: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = level_pair(level)
    return q_pred[:, quantile_column(quantiles, lo)], q_pred[:, quantile_column(quantiles, hi)]


def mae(y: np.ndarray, median: np.ndarray) -> float:
    return float(np.mean(np.abs(y - median)))


def mape(y: np.ndarray, median: np.ndarray) -> float:
    """Mean absolute percentage error of the median, in percent."""
    return float(np.mean(np.abs(y - median) / y) * 100.0)


def pinball_loss(y: np.ndarray, pred: np.ndarray, q: float) -> float:
    """Mean quantile (pinball) loss: q * (y - pred) if under-predicted, (1 - q) * (pred - y) otherwise."""
    diff = y - pred
    return float(np.mean(np.maximum(q * diff, (q - 1.0) * diff)))


def pinball_losses(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> dict[float, float]:
    return {q: pinball_loss(y, q_pred[:, i], q) for i, q in enumerate(quantiles)}


def coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals inside the closed interval [lower, upper]."""
    return float(np.mean((y >= lower) & (y <= upper)))


def late_rate(y: np.ndarray, upper: np.ndarray) -> float:
    """Share of arrivals after the promised window closes."""
    return float(np.mean(y > upper))


def early_rate(y: np.ndarray, lower: np.ndarray) -> float:
    """Share of arrivals before the promised window opens."""
    return float(np.mean(y < lower))


def crps_weights(quantiles: Sequence[float]) -> np.ndarray:
    """Midpoint-rule weights of each quantile level on (0, 1), normalised to sum to one."""
    taus = np.asarray(quantiles, dtype=float)
    edges = np.concatenate([[0.0], (taus[1:] + taus[:-1]) / 2.0, [1.0]])
    weights = np.diff(edges)
    return weights / weights.sum()


def crps(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> float:
    """CRPS approximated from quantiles: 2 * integral of the pinball loss over levels (Gneiting & Ranjan 2011)."""
    losses = np.array([pinball_loss(y, q_pred[:, i], q) for i, q in enumerate(quantiles)])
    return float(2.0 * np.sum(crps_weights(quantiles) * losses))


def pit_values(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Probability integral transform from the predicted quantile function (linear between levels).

    Below the lowest predicted quantile the PIT is taken as the lowest level scaled linearly from 0,
    above the highest as the highest level rising to 1 at twice the top quantile's distance from the median.
    """
    taus = np.asarray(quantiles, dtype=float)
    below = (q_pred <= y[:, None]).sum(axis=1)  # how many quantiles lie at or below the actual
    pit = np.empty(len(y), dtype=float)
    k = len(taus)
    inner = (below > 0) & (below < k)
    idx = below[inner]
    lo_q = q_pred[inner, idx - 1]
    hi_q = q_pred[inner, idx]
    span = np.where(hi_q > lo_q, hi_q - lo_q, 1.0)
    frac = np.clip((y[inner] - lo_q) / span, 0.0, 1.0)
    pit[inner] = taus[idx - 1] + frac * (taus[idx] - taus[idx - 1])
    first = below == 0
    pit[first] = taus[0] * np.clip(y[first] / np.maximum(q_pred[first, 0], 1e-9), 0.0, 1.0)
    last = below == k
    med = q_pred[last, k // 2]
    reach = np.maximum(2.0 * (q_pred[last, -1] - med), 1e-9)
    pit[last] = taus[-1] + (1.0 - taus[-1]) * np.clip((y[last] - q_pred[last, -1]) / reach, 0.0, 1.0)
    return pit


def summary_metrics(
    y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float], levels: Sequence[float] = DEFAULT_LEVELS
) -> dict[str, float]:
    """Flat metric dict (MLflow-friendly names): accuracy of the median, pinball, CRPS, coverage and width."""
    median = q_pred[:, quantile_column(quantiles, 0.5)]
    out: dict[str, float] = {
        "mae_s": mae(y, median),
        "mape_pct": mape(y, median),
        "crps_s": crps(y, q_pred, quantiles),
    }
    losses = pinball_losses(y, q_pred, quantiles)
    for q, loss in losses.items():
        out[f"pinball_{qtag(q)}"] = loss
    out["pinball_mean"] = float(np.mean(list(losses.values())))
    for level in levels:
        lower, upper = interval(q_pred, quantiles, level)
        tag = f"{round(level * 100)}"
        out[f"coverage_{tag}"] = coverage(y, lower, upper)
        out[f"width_{tag}_s"] = float(np.mean(upper - lower))
        out[f"late_rate_{tag}"] = late_rate(y, upper)
        out[f"early_rate_{tag}"] = early_rate(y, lower)
    out["n"] = float(len(y))
    return out


def segment_coverage(
    segments: pl.Series,
    y: np.ndarray,
    q_pred: np.ndarray,
    quantiles: Sequence[float],
    level: float,
    min_count: int = MIN_SEGMENT_TRIPS,
) -> pl.DataFrame:
    """Coverage and mean width per segment value, for segments with at least `min_count` trips."""
    lower, upper = interval(q_pred, quantiles, level)
    frame = pl.DataFrame(
        {
            "segment": segments.cast(pl.String),
            "covered": (y >= lower) & (y <= upper),
            "width_s": upper - lower,
        }
    )
    return (
        frame.group_by("segment")
        .agg(
            pl.len().alias("n"),
            pl.col("covered").mean().alias("coverage"),
            pl.col("width_s").mean().alias("mean_width_s"),
        )
        .filter(pl.col("n") >= min_count)
        .with_columns(pl.lit(level).alias("level"), (pl.col("coverage") - level).abs().alias("abs_gap"))
        .sort("segment")
    )
