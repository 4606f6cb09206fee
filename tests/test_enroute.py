"""En-route ETAs: known answers on a hand-made distribution, properties of the conditioning, and the
calibration of the remaining windows and of the late probability on legs whose truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import enroute

TAUS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
Q = np.array([[100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0]])


def test_the_distribution_by_hand() -> None:
    # at a knot F is its level; between knots linear in log-seconds
    assert enroute.cdf(Q, TAUS, np.array([400.0]))[0] == pytest.approx(0.5)
    assert enroute.cdf(Q, TAUS, np.array([math.sqrt(400 * 500)]))[0] == pytest.approx(0.625)
    assert enroute.quantile(Q, TAUS, np.array([0.625]))[0] == pytest.approx(math.sqrt(400 * 500))
    # the power-law tail: S(t) = 0.05 (t / 700)^(-1/s), s = log(7/6) / log(2)
    s = math.log(7 / 6) / math.log(2)
    assert 1 - enroute.cdf(Q, TAUS, np.array([1400.0]))[0] == pytest.approx(0.05 * 2 ** (-1 / s))
    assert enroute.quantile(Q, TAUS, np.array([0.975]))[0] == pytest.approx(700 * 2**s)
    # the lower tail continues the first segment to tau = 0: log t(0) = log 100 - 0.05 * log 2 / 0.05
    assert enroute.cdf(Q, TAUS, np.array([50.0]))[0] == pytest.approx(0.0, abs=1e-12)
    assert enroute.cdf(Q, TAUS, np.array([math.sqrt(50 * 100)]))[0] == pytest.approx(0.025)


def test_a_leg_running_at_its_median_by_hand() -> None:
    """Still running at 400 s (F = 0.5): its remaining median is Q(0.75) - 400 = 100 s, its remaining 90%
    level Q(0.95) - 400 = 300 s; a promise at 600 s is missed with S(600) / S(400) = 0.1 / 0.5."""
    elapsed = np.array([400.0])
    remaining = enroute.remaining_quantiles(Q, TAUS, elapsed)
    assert remaining[0, 3] == pytest.approx(100.0)
    assert remaining[0, 5] == pytest.approx(300.0)
    assert enroute.late_probability(Q, TAUS, elapsed, np.array([600.0]))[0] == pytest.approx(0.2)
    assert enroute.late_probability(Q, TAUS, np.array([0.0]), np.array([600.0]))[0] == pytest.approx(0.1)
    assert enroute.late_probability(Q, TAUS, elapsed, np.array([300.0]))[0] == 1.0  # the promise has passed
    # at elapsed 0 the answer is today's
    np.testing.assert_allclose(enroute.remaining_quantiles(Q, TAUS, np.array([0.0])), Q)


def test_expected_lateness_is_the_integral_of_the_survival_above_the_promise() -> None:
    """E[(T - m)+] = integral of S(t) dt from m (here by a fine trapezoid over t, up to the same cutoff)."""
    promised = np.array([500.0])
    got = enroute.expected_lateness(Q, TAUS, np.array([0.0]), promised)[0]
    top = enroute.quantile(Q, TAUS, np.array([enroute.TAIL_TAU]))[0]
    t = np.linspace(500.0, top, 200_001)
    survival = 1 - enroute.cdf(np.repeat(Q, len(t), axis=0), TAUS, t)
    beyond = (1 - enroute.TAIL_TAU) * (top - 500.0)  # the mass above the cutoff is not integrated
    expected = np.trapezoid(survival, t) - beyond
    assert got == pytest.approx(expected, rel=2e-3)
    running = enroute.expected_lateness(Q, TAUS, np.array([400.0]), promised)[0]
    assert running == pytest.approx(got / 0.5, rel=1e-9)  # conditioned on T > 400: divided by S(400)
    # a promise already passed: late by the time gone past it, plus what is expected from now on
    passed = enroute.expected_lateness(Q, TAUS, np.array([500.0]), np.array([400.0]))[0]
    from_now = enroute.expected_lateness(Q, TAUS, np.array([500.0]), np.array([500.0]))[0]
    assert passed == pytest.approx(100.0 + from_now)


@st.composite
def distributions(draw):
    n = draw(st.integers(1, 6))
    base = np.array(draw(st.lists(st.floats(30.0, 5000.0), min_size=n, max_size=n)))
    steps = np.array(
        draw(st.lists(st.lists(st.floats(0.0, 0.6), min_size=6, max_size=6), min_size=n, max_size=n))
    )
    q = base[:, None] * np.exp(np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1))
    elapsed = np.array(draw(st.lists(st.floats(0.0, 20_000.0), min_size=n, max_size=n)))
    return q, elapsed


@settings(max_examples=200, deadline=None)
@given(drawn=distributions(), later=st.floats(1.0, 5000.0))
def test_remaining_quantiles_never_negative_never_crossing_and_risk_monotone(drawn, later) -> None:
    q, elapsed = drawn
    remaining = enroute.remaining_quantiles(q, TAUS, elapsed)
    assert np.all(remaining >= 0)
    assert np.all(np.diff(remaining, axis=1) >= -1e-6 * np.maximum(remaining[:, 1:], 1.0))
    promised = elapsed + later
    p = enroute.late_probability(q, TAUS, elapsed, promised)
    assert np.all((p >= 0) & (p <= 1))
    # a later promise is missed no more often
    assert np.all(enroute.late_probability(q, TAUS, elapsed, promised + 100.0) <= p + 1e-12)
    # past the median, a leg that has run longer misses a fixed promise more often
    median = q[:, 3]
    e1 = np.maximum(elapsed, median)
    e2 = e1 + 0.5 * later
    fixed = e2 + later
    assert np.all(
        enroute.late_probability(q, TAUS, e2, fixed) >= enroute.late_probability(q, TAUS, e1, fixed) - 1e-12
    )


def _lognormal_legs(n: int, sigma: float, seed: int, model_sigma: float | None = None):
    """Legs of lognormal durations around medians of 300-3000 s; a model that states sigma (or another)."""
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    median = rng.uniform(300.0, 3000.0, n)
    y = median * np.exp(rng.normal(0.0, sigma, n))
    z = norm.ppf(TAUS)
    q = median[:, None] * np.exp(np.outer(np.ones(n), z * (model_sigma or sigma)))
    return q, y


def test_calibration_holds_the_remaining_windows_and_the_late_risk() -> None:
    """A model too narrow for its legs (sigma 0.25 stated, 0.4 true): the raw remaining windows under-cover
    at every checkpoint; calibrated on other legs, they hold 80% at each one, and the late probability's
    expected calibration error is small and beats the base rate."""
    q_cal, y_cal = _lognormal_legs(20_000, 0.4, seed=1, model_sigma=0.25)
    q_test, y_test = _lognormal_legs(20_000, 0.4, seed=2, model_sigma=0.25)
    calibration = enroute.fit_enroute(q_cal, y_cal, TAUS)
    for i, rows, elapsed in enroute.snapshots(q_test, y_test):
        left = y_test[rows] - elapsed
        raw = enroute.remaining_quantiles(q_test[rows], TAUS, elapsed)
        fixed = calibration.remaining(q_test[rows], elapsed)
        covered_raw = np.mean((left >= raw[:, 1]) & (left <= raw[:, 5]))
        covered = np.mean((left >= fixed[:, 1]) & (left <= fixed[:, 5]))
        assert covered_raw < 0.78, i
        assert covered == pytest.approx(0.8, abs=0.02), i
    predicted, missed = enroute.late_outcomes(q_test, y_test, TAUS)
    calibrated = np.interp(predicted, calibration.risk_x, calibration.risk_y)
    raw_metrics = enroute.risk_metrics(predicted, missed)
    metrics = enroute.risk_metrics(calibrated, missed)
    assert metrics["late_ece"] <= 0.02 < raw_metrics["late_ece"]
    assert metrics["late_brier_skill"] > 0
    assert enroute.EnrouteCalibration.from_dict(calibration.to_dict()) == calibration
