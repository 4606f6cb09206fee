"""Metrics against values computed by hand on five rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models import metrics

Q = (0.1, 0.5, 0.9)
Y = np.array([100.0, 200.0, 300.0, 400.0, 500.0])
PRED = np.array(
    [
        [80.0, 100.0, 120.0],  # y at the median
        [150.0, 180.0, 210.0],  # y inside, above median
        [310.0, 320.0, 330.0],  # y below the interval (early)
        [300.0, 350.0, 390.0],  # y above the interval (late)
        [400.0, 500.0, 600.0],
    ]
)


def test_mae_and_mape_by_hand() -> None:
    # |100-100| + |200-180| + |300-320| + |400-350| + |500-500| = 0 + 20 + 20 + 50 + 0 = 90
    assert metrics.mae(Y, PRED[:, 1]) == pytest.approx(18.0)
    # (0 + 20/200 + 20/300 + 50/400 + 0) / 5 * 100
    assert metrics.mape(Y, PRED[:, 1]) == pytest.approx((0.1 + 1 / 15 + 0.125) / 5 * 100)


def test_pinball_by_hand() -> None:
    # q=0.9, preds of column 2: diffs y - pred = -20, -10, -30, 10, -100
    # losses: 0.1*20, 0.1*10, 0.1*30, 0.9*10, 0.1*100 = 2, 1, 3, 9, 10 -> mean 5
    assert metrics.pinball_loss(Y, PRED[:, 2], 0.9) == pytest.approx(5.0)
    # q=0.1, column 0: diffs 20, 50, -10, 100, 100 -> 2, 5, 9, 10, 10 -> mean 7.2
    assert metrics.pinball_loss(Y, PRED[:, 0], 0.1) == pytest.approx(7.2)


def test_coverage_width_late_early_by_hand() -> None:
    lower, upper = PRED[:, 0], PRED[:, 2]
    assert metrics.coverage(Y, lower, upper) == pytest.approx(3 / 5)
    assert metrics.late_rate(Y, upper) == pytest.approx(1 / 5)
    assert metrics.early_rate(Y, lower) == pytest.approx(1 / 5)
    assert metrics.interval(PRED, Q, 0.8)[0].tolist() == lower.tolist()


def test_crps_weights_and_value_by_hand() -> None:
    w = metrics.crps_weights(Q)
    # edges 0, 0.3, 0.7, 1 -> 0.3, 0.4, 0.3
    assert w.tolist() == pytest.approx([0.3, 0.4, 0.3])
    losses = [7.2, metrics.pinball_loss(Y, PRED[:, 1], 0.5), 5.0]
    assert losses[1] == pytest.approx(9.0)  # 0.5 * 90 / 5
    assert metrics.crps(Y, PRED, Q) == pytest.approx(2 * (0.3 * 7.2 + 0.4 * 9.0 + 0.3 * 5.0))


def test_crps_of_a_point_forecast_is_absolute_error() -> None:
    # a degenerate distribution at the point: CRPS reduces to |y - x|
    taus = np.linspace(0.01, 0.99, 99)
    pred = np.full((1, 99), 10.0)
    assert metrics.crps(np.array([13.0]), pred, taus) == pytest.approx(3.0, rel=1e-9)


def test_pit_values() -> None:
    pit = metrics.pit_values(Y, PRED, Q)
    assert pit[0] == pytest.approx(0.5)
    assert pit[1] == pytest.approx(0.5 + (200 - 180) / 30 * 0.4)
    assert pit[2] == pytest.approx(0.1 * 300 / 310)
    assert 0.9 < pit[3] <= 1.0


def test_pit_is_uniform_for_a_true_distribution() -> None:
    rng = np.random.default_rng(0)
    y = rng.lognormal(5, 0.4, 20_000)
    from scipy.stats import lognorm

    taus = np.array([0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])
    q = np.tile(lognorm.ppf(taus, 0.4, scale=np.exp(5)), (len(y), 1))
    pit = metrics.pit_values(y, q, taus)
    inside = (pit >= 0.05) & (pit <= 0.95)
    assert inside.mean() == pytest.approx(0.9, abs=0.01)
    assert np.mean(pit <= 0.5) == pytest.approx(0.5, abs=0.01)


def test_summary_and_segments() -> None:
    out = metrics.summary_metrics(Y, PRED, Q, levels=(0.8,))
    assert out["coverage_80"] == pytest.approx(0.6)
    assert out["width_80_s"] == pytest.approx((40 + 60 + 20 + 90 + 200) / 5)
    assert out["mae_s"] == pytest.approx(18.0)
    seg = metrics.segment_coverage(pl.Series(["a", "a", "b", "b", "b"]), Y, PRED, Q, 0.8, min_count=2)
    assert seg["segment"].to_list() == ["a", "b"]
    assert seg["coverage"].to_list() == pytest.approx([1.0, 1 / 3])
    assert metrics.segment_coverage(pl.Series(["a"] * 5), Y, PRED, Q, 0.8, min_count=6).height == 0


def test_unknown_quantile_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match=r"0\.05"):
        metrics.interval(PRED, Q, 0.9)
