"""The online calibrator: known answers on a hand-made stream, MAPIE's CQR as an oracle of its offsets, a
slowed area restored, and its bounds under any labels (properties)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mapie.regression import ConformalizedQuantileRegressor

from models import online
from models.metrics import coverage
from models.online import CompletedDay, OnlineConfig, OnlineState
from tests.test_conformal import Fixed

QUANTILES = [0.1, 0.5, 0.9]
LAYERS = OnlineConfig().layers


def _day(day: str, y: np.ndarray, q: np.ndarray, area: np.ndarray | None = None) -> CompletedDay:
    area = np.full(len(y), "A", dtype=object) if area is None else area
    return CompletedDay(day, y, q, dict.fromkeys(LAYERS, area))


def _state(**config) -> OnlineState:
    return OnlineState(champion_version=3, quantiles=QUANTILES, config=OnlineConfig(**config))


def test_nothing_learned_changes_nothing() -> None:
    q = np.array([[100.0, 150.0, 200.0]])
    assert online.apply(None, q, {}) is q
    few = online.update(_state(min_legs=200), _day("2026-01-01", np.full(50, 500.0), np.tile(q, (50, 1))))
    assert few.calibration is None
    assert few.revision == 1
    assert np.array_equal(online.apply(few, q, {}), q)


def test_a_late_day_widens_the_next_windows_by_the_conformal_order_statistic() -> None:
    """Known answer: 300 legs that the champion gave 100..200 s (median 150) took 180 + i/10 s. The CQR
    scores max(100 - y, y - 200) are -20 + i/10 for i = 0..299: the 80% offset is the rank
    ceil(301 * 0.8) = 241 score, 4.0 s; the median's the rank-151 residual of y - 150, 45.0 s."""
    y = 180.0 + np.arange(300) / 10.0
    q = np.tile([100.0, 150.0, 200.0], (300, 1))
    state = online.update(_state(max_widen=1.0, max_narrow=1.0), _day("2026-01-01", y, q))
    out = online.apply(state, q[:1], {name: np.array(["A"], dtype=object) for name in LAYERS})
    np.testing.assert_allclose(out, [[96.0, 195.0, 204.0]])
    assert state.describe() == {
        "champion_version": 3,
        "revision": 1,
        "through": "2026-01-01",
        "legs": 300,
        "active": True,
    }


def test_offsets_match_mapie_cqr_on_the_window() -> None:
    """The window's global offsets are split CQR on its legs: MAPIE's symmetric CQR, given the champion's
    quantiles as its prefit models, gives the same interval."""
    rng = np.random.default_rng(8)
    n = 600
    x = rng.uniform(500.0, 1500.0, (n, 1))
    y = x[:, 0] * rng.lognormal(0.0, 0.3, n)
    q = np.column_stack([x[:, 0] * 0.8, x[:, 0], x[:, 0] * 1.2])
    days = [_day(f"2026-01-0{i + 1}", y[i::3], q[i::3]) for i in range(3)]
    state = _state(max_widen=10.0, max_narrow=10.0, evidence_z=99.0)  # global layer only, no bounds
    for day in days:
        state = online.update(state, day)
    ordered = np.concatenate([d.y for d in days]), np.concatenate([d.q for d in days])
    models = [Fixed(0.0).fit(x, y) for _ in range(3)]
    for model, factor in zip(models, (0.8, 1.2, 1.0), strict=True):
        model.predict = lambda X, f=factor: X[:, 0] * f
    cqr = ConformalizedQuantileRegressor(models, confidence_level=0.8, prefit=True)
    xs = np.concatenate([x[i::3] for i in range(3)])
    cqr.conformalize(xs, ordered[0])
    _, intervals = cqr.predict_interval(xs[:5], symmetric_correction=True)
    ours = online.apply(state, ordered[1][:5], {name: np.full(5, "A", dtype=object) for name in LAYERS})
    np.testing.assert_allclose(intervals[:, 0, 0], ours[:, 0], rtol=1e-12)
    np.testing.assert_allclose(intervals[:, 1, 0], ours[:, 2], rtol=1e-12)


def test_a_slowed_area_is_restored_and_the_others_keep_their_windows() -> None:
    """Area S (10% of legs) runs 40% slower than the champion knows since today; after one day of
    completed legs its windows hold ~80% again, and the other areas' windows barely move."""
    rng = np.random.default_rng(4)

    def draw(n: int):
        area = rng.choice(np.array(["S", "B", "C"], dtype=object), n, p=[0.1, 0.45, 0.45])
        base = rng.uniform(600.0, 1800.0, n)
        y = base * rng.lognormal(0.0, 0.25, n) * np.where(area == "S", 1.4, 1.0)
        q = np.column_stack([base * np.exp(-1.2816 * 0.25), base, base * np.exp(1.2816 * 0.25)])
        return y, q, area

    y, q, area = draw(4000)
    state = online.update(_state(), _day("2026-01-01", y, q, area))
    y2, q2, area2 = draw(4000)
    out = online.apply(state, q2, dict.fromkeys(LAYERS, area2))
    slow = area2 == "S"
    assert coverage(y2[slow], q2[slow, 0], q2[slow, 2]) < 0.6
    assert coverage(y2[slow], out[slow, 0], out[slow, 2]) == pytest.approx(0.8, abs=0.05)
    assert coverage(y2[~slow], out[~slow, 0], out[~slow, 2]) == pytest.approx(0.8, abs=0.03)
    width = np.mean(out[~slow, 2] - out[~slow, 0]) / np.mean(q2[~slow, 2] - q2[~slow, 0])
    assert width == pytest.approx(1.0, abs=0.1)


def test_the_window_rolls_and_a_day_learned_again_replaces_itself() -> None:
    q = np.tile([100.0, 150.0, 200.0], (300, 1))
    state = _state(window_days=2)
    for day in ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-03"):
        state = online.update(state, _day(day, np.full(300, 150.0), q))
    assert [d.day for d in state.days] == ["2026-01-02", "2026-01-03"]
    assert state.revision == 4


def test_a_saved_state_loads_and_answers_the_same(tmp_path) -> None:
    rng = np.random.default_rng(2)
    y = rng.uniform(100.0, 300.0, 500)
    q = np.tile([120.0, 180.0, 260.0], (500, 1))
    area = rng.choice(np.array(["A", "B"], dtype=object), 500)
    state = online.update(_state(), _day("2026-01-01", y, q, area))
    restored = online.load(online.save(state, tmp_path / "state"))
    keys = dict.fromkeys(LAYERS, area[:20])
    np.testing.assert_array_equal(online.apply(restored, q[:20], keys), online.apply(state, q[:20], keys))
    assert restored.describe() == state.describe()


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.floats(min_value=0.5, max_value=50_000.0), min_size=200, max_size=400),
    taps=st.integers(min_value=0, max_value=400),
    scale=st.floats(min_value=0.1, max_value=10.0),
)
def test_no_stream_of_labels_makes_windows_cross_go_negative_or_blow_up(labels, taps, scale) -> None:
    """Whatever the completed legs say (a burst of taps at pickup, legs ten times as long), the adjusted
    quantiles are sorted, positive, and each end stays within the bounds of its interval's width."""
    y = np.asarray(labels) * scale
    y[: min(taps, len(y))] = 1.0  # "delivered" tapped at pickup
    q = np.tile([300.0, 600.0, 900.0], (len(y), 1))
    config = OnlineConfig()
    state = online.update(_state(), _day("2026-01-01", y, q))
    out = online.apply(state, q[:3], {name: np.full(3, "A", dtype=object) for name in LAYERS})
    assert np.all(np.diff(out, axis=1) >= 0)
    assert np.all(out >= 1.0)
    width = 600.0
    assert np.all(out[:, 0] >= 300.0 - config.max_widen * width - 1e-9)
    assert np.all(out[:, 2] <= 900.0 + config.max_widen * width + 1e-9)
    assert np.all(out[:, 2] - out[:, 0] >= width * (1 - 2 * config.max_narrow) - 1e-9)


def test_a_store_serves_the_newest_whole_revision_and_keeps_a_few(tmp_path) -> None:
    store = online.StateStore(tmp_path / "online")
    assert store.latest("eta-model", 3) is None
    q = np.tile([100.0, 150.0, 200.0], (300, 1))
    state = _state()
    for i in range(7):
        state = online.update(state, _day(f"2026-01-0{i + 1}", np.full(300, 160.0 + i), q))
        store.write("eta-model", state)
    assert store.latest_revision("eta-model", 3) == 7
    assert store.latest("eta-model", 3).describe() == state.describe()
    kept = sorted(p.name for p in store.folder("eta-model", 3).glob("r*"))
    assert kept == ["r3", "r4", "r5", "r6", "r7"]
    assert store.latest_revision("eta-model", 4) is None  # another champion starts from nothing
