"""Evaluation plots: each is built as a `matplotlib.figure.Figure` (no pyplot, so the caller's backend is left
alone and a notebook shows the returned figure inline) and saved as PNG by a thin wrapper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from models.metrics import DEFAULT_LEVELS, coverage, interval, pit_values

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure that belongs to no pyplot state and needs no backend: `savefig` renders it with Agg."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="tight")


def save_png(fig: Figure, path: Path, dpi: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def reliability_figure(
    y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float], levels: Sequence[float] = DEFAULT_LEVELS
) -> Figure:
    """Nominal vs empirical: P(y <= q_t) per quantile level and coverage per interval level."""
    fig = new_figure((9, 4))
    axes = fig.subplots(1, 2)
    empirical = [float(np.mean(y <= q_pred[:, i])) for i in range(len(quantiles))]
    axes[0].plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    axes[0].plot(quantiles, empirical, "o-", label="model")
    axes[0].set(
        xlabel="nominal quantile level", ylabel="share of actuals below", title="Quantile reliability"
    )
    axes[0].legend()
    cov = [coverage(y, *interval(q_pred, quantiles, lv)) for lv in levels]
    axes[1].plot([0.4, 1], [0.4, 1], "--", color="grey")
    axes[1].plot(levels, cov, "o-")
    for lv, c in zip(levels, cov, strict=True):
        axes[1].annotate(f"{c:.3f}", (lv, c), textcoords="offset points", xytext=(5, -12))
    axes[1].set(xlabel="nominal interval level", ylabel="empirical coverage", title="Interval coverage")
    return fig


def reliability_diagram(
    y: np.ndarray,
    q_pred: np.ndarray,
    quantiles: Sequence[float],
    path: Path,
    levels: Sequence[float] = DEFAULT_LEVELS,
) -> Path:
    return save_png(reliability_figure(y, q_pred, quantiles, levels), path)


def coverage_by_segment_figure(tables: dict[str, pl.DataFrame], level: float) -> Figure:
    """One panel per segmentation (hour, region, distance band): coverage per segment with the nominal line."""
    names = [n for n, t in tables.items() if t.height > 0] or list(tables)[:1]
    fig = new_figure((10, 2.6 * len(names)))
    axes = fig.subplots(len(names), 1, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        table = tables[name]
        if table.height:
            ax.bar(table["segment"].to_list(), table["coverage"].to_list(), color="tab:blue")
            ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.axhline(level, color="red", linestyle="--")
        ax.set(
            ylim=(max(0.0, level - 0.3), 1.0),
            ylabel="coverage",
            title=f"{round(level * 100)}% coverage by {name}",
        )
    return fig


def coverage_by_segment(tables: dict[str, pl.DataFrame], level: float, path: Path) -> Path:
    return save_png(coverage_by_segment_figure(tables, level), path)


def pit_figure(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> Figure:
    """PIT histogram: flat when the predicted distribution is calibrated."""
    fig = new_figure((5, 3.5))
    ax = fig.subplots()
    ax.hist(
        pit_values(y, q_pred, quantiles),
        bins=20,
        range=(0, 1),
        density=True,
        color="tab:green",
        edgecolor="white",
    )
    ax.axhline(1.0, color="grey", linestyle="--")
    ax.set(xlabel="PIT", ylabel="density", title="PIT histogram")
    return fig


def pit_histogram(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float], path: Path) -> Path:
    return save_png(pit_figure(y, q_pred, quantiles), path)


def width_vs_distance_figure(
    distance_km: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float], level: float = 0.8
) -> Figure:
    """Mean interval width per distance decile."""
    lower, upper = interval(q_pred, quantiles, level)
    bins = np.quantile(distance_km, np.linspace(0, 1, 11))
    idx = np.clip(np.digitize(distance_km, bins[1:-1]), 0, 9)
    centers = [float(np.mean(distance_km[idx == b])) for b in range(10) if np.any(idx == b)]
    widths = [float(np.mean((upper - lower)[idx == b])) / 60 for b in range(10) if np.any(idx == b)]
    fig = new_figure((5, 3.5))
    ax = fig.subplots()
    ax.plot(centers, widths, "o-")
    ax.set(
        xlabel="straight-line distance (km)",
        ylabel="mean width (min)",
        title=f"{round(level * 100)}% width vs distance",
    )
    return fig


def width_vs_distance(
    distance_km: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float], path: Path, level: float = 0.8
) -> Path:
    return save_png(width_vs_distance_figure(distance_km, q_pred, quantiles, level), path)
