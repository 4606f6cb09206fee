"""Route arrival maths: the quantile function, sampling, sums and correlation (pure numpy)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.stats import norm

from serving import route

TAUS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


def lognormal_quantiles(median: float, sigma: float, n: int = 1) -> np.ndarray:
    return np.tile(median * np.exp(sigma * norm.ppf(TAUS)), (n, 1))


def test_samples_reproduce_the_quantiles_they_came_from() -> None:
    q = lognormal_quantiles(600.0, 0.4, n=3) * np.array([[1.0], [2.0], [0.5]])
    z = route.latent_scores(200_000, 3, 0.0, np.random.default_rng(0))
    durations = route.sample_durations(q, TAUS, z)
    empirical = np.quantile(durations, TAUS, axis=0).T
    np.testing.assert_allclose(empirical, q, rtol=0.02)


def test_tails_beyond_the_trained_levels_continue_a_lognormal() -> None:
    q = lognormal_quantiles(600.0, 0.4)
    z = np.array([[norm.ppf(0.01), norm.ppf(0.99)]]).T  # two draws of one leg
    np.testing.assert_allclose(
        route.sample_durations(q, TAUS, z)[:, 0], 600 * np.exp(0.4 * z[:, 0]), rtol=1e-9
    )


def test_sums_are_not_sums_of_quantiles() -> None:
    """Ten independent legs: the 90% window of the sum is far narrower than the sum of the legs' windows."""
    q = lognormal_quantiles(300.0, 0.5, n=10)
    z = route.latent_scores(50_000, 10, 0.0, np.random.default_rng(1))
    arrivals = route.cumulative_arrivals(route.sample_durations(q, TAUS, z), np.zeros(10))
    ((lower, upper),) = route.arrival_bounds(arrivals, [0.9])
    added = q[:, -1].sum() - q[:, 0].sum()
    assert upper[-1] - lower[-1] < 0.5 * added
    # and the sum's window holds 90% of independently simulated sums (oracle: draw lognormals directly)
    truth = (300.0 * np.exp(0.5 * np.random.default_rng(2).standard_normal((50_000, 10)))).sum(axis=1)
    assert np.mean((truth >= lower[-1]) & (truth <= upper[-1])) == pytest.approx(0.9, abs=0.01)


def test_correlation_widens_the_windows_of_later_stops() -> None:
    q = lognormal_quantiles(300.0, 0.5, n=8)
    widths = []
    for rho in (0.0, 0.5, 1.0):
        z = route.latent_scores(40_000, 8, rho, np.random.default_rng(3))
        arrivals = route.cumulative_arrivals(route.sample_durations(q, TAUS, z), np.zeros(8))
        ((lower, upper),) = route.arrival_bounds(arrivals, [0.8])
        widths.append(upper[-1] - lower[-1])
    assert widths[0] < widths[1] < widths[2]
    # fully correlated legs move together: the sum's window is the sum of the legs' windows
    added = 8 * (np.exp(0.5 * norm.ppf(0.9)) - np.exp(0.5 * norm.ppf(0.1))) * 300.0
    assert widths[2] == pytest.approx(added, rel=0.02)


def test_latent_scores_have_the_stated_correlation() -> None:
    z = route.latent_scores(100_000, 3, 0.3, np.random.default_rng(4))
    corr = np.corrcoef(z.T)
    assert corr[0, 1] == pytest.approx(0.3, abs=0.02)
    assert corr[1, 2] == pytest.approx(0.3, abs=0.02)
    with pytest.raises(ValueError, match="rho"):
        route.latent_scores(10, 2, 1.5, np.random.default_rng(0))


def test_service_times_wait_at_every_stop_but_the_last() -> None:
    durations = np.array([[100.0, 200.0, 300.0]])
    np.testing.assert_array_equal(
        route.cumulative_arrivals(durations, np.array([10.0, 20.0, 30.0])), [[100.0, 310.0, 630.0]]
    )


def test_planned_departures_chain_medians_and_service_times() -> None:
    start = datetime(2026, 1, 20, 6, 30, tzinfo=UTC)
    starts = route.planned_departures(start, [600.0, 300.0, 900.0], [60.0, 0.0, 120.0])
    assert [s.isoformat() for s in starts] == [
        "2026-01-20T06:30:00+00:00",
        "2026-01-20T06:41:00+00:00",
        "2026-01-20T06:46:00+00:00",
    ]
