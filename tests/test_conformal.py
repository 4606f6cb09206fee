"""Conformal offsets: exact order statistics on small samples, MAPIE as an oracle, layers that need evidence,
caller profiles, and the bounds of every calibrated answer (properties)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mapie.regression import ConformalizedQuantileRegressor
from sklearn.base import BaseEstimator, RegressorMixin

from models.conformal import (
    CalibrationConfig,
    ConformalCalibration,
    _differs,
    conformal_offset,
    fit_conformal,
    interval_pairs,
    profile_key,
)
from models.metrics import coverage

QUANTILES = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
NO_LAYERS = CalibrationConfig(layers=())


def test_offset_is_the_conformal_order_statistic() -> None:
    residuals = np.array([5.0, -1.0, 3.0, 0.0, 2.0, 4.0, 1.0, -2.0, 6.0])  # n = 9; sorted -2..6
    # upper level 0.9: rank ceil(10 * 0.9) = 9 -> largest = 6
    assert conformal_offset(residuals, 0.9) == 6.0
    # level 0.75: rank ceil(7.5) = 8 -> 5
    assert conformal_offset(residuals, 0.75) == 5.0
    # lower level 0.1: rank floor(1.0) = 1 -> smallest = -2
    assert conformal_offset(residuals, 0.1) == -2.0
    # lower level 0.25: floor(2.5) = 2 -> -1
    assert conformal_offset(residuals, 0.25) == -1.0
    # median: ceil(5) = 5 -> 2
    assert conformal_offset(residuals, 0.5) == 2.0


def test_too_few_points_give_infinite_offsets() -> None:
    assert conformal_offset(np.array([1.0, 2.0]), 0.95) == float("inf")
    assert conformal_offset(np.array([1.0, 2.0]), 0.05) == float("-inf")
    with pytest.raises(ValueError, match="calibration window is empty"):
        conformal_offset(np.array([]), 0.5)


def test_symmetric_offsets_by_hand() -> None:
    """Nine legs, a model that says 100..200 s for the 0.1-0.9 interval and 150 s for the median. The CQR
    scores max(100 - y, y - 200) are sorted -50 -40 -30 -10 -10 0 10 20 90; the 80% interval widens by
    the rank ceil(10 * 0.8) = 8 score, 20 s, on both ends; the median moves by the rank-5 residual."""
    y = np.array([110.0, 150.0, 160.0, 170.0, 190.0, 200.0, 210.0, 220.0, 290.0])
    # y - 150: -40 0 10 20 40 50 60 70 140 -> rank 5 = 40
    raw = np.log(np.tile([100.0, 150.0, 200.0], (9, 1)))
    calibration = fit_conformal(y, raw, [0.1, 0.5, 0.9], config=NO_LAYERS)
    assert calibration.stacks["none"][0].offsets["*"] == pytest.approx([-20.0, 40.0, 20.0])
    np.testing.assert_allclose(calibration.apply(raw[:1]), [[80.0, 190.0, 220.0]])
    per_level = fit_conformal(y, raw, [0.1, 0.5, 0.9], config=CalibrationConfig(layers=(), symmetric=False))
    # y - 100 sorted 10 ... 190: rank floor(1.0) = 1 -> +10; y - 200 sorted -90 ... 90: rank 9 -> +90
    assert per_level.stacks["none"][0].offsets["*"] == pytest.approx([10.0, 40.0, 90.0])


def test_log_space_offsets_are_factors() -> None:
    rng = np.random.default_rng(0)
    y = np.exp(rng.normal(6.0, 0.5, 2000))
    raw = np.tile([5.8, 6.0, 6.2], (2000, 1))  # far too narrow
    calibration = fit_conformal(y, raw, [0.1, 0.5, 0.9], config=CalibrationConfig(layers=(), space="log"))
    q = calibration.apply(raw[:1])
    # the 80% interval of a lognormal(6, 0.5): exp(6 +- 1.2816 * 0.5)
    assert q[0, 0] == pytest.approx(math.exp(6 - 0.6408), rel=0.05)
    assert q[0, 2] == pytest.approx(math.exp(6 + 0.6408), rel=0.05)


def test_calibration_fixes_a_biased_overconfident_model() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    y_cal, y_test = rng.normal(1000.0, 200.0, n), rng.normal(1000.0, 200.0, n)
    raw = np.log(np.tile(np.linspace(850.0, 950.0, 7), (n, 1)))  # biased low and far too narrow
    calibrated = fit_conformal(y_cal, raw, QUANTILES, config=NO_LAYERS).apply(raw)
    assert coverage(y_test, np.exp(raw[:, 1]), np.exp(raw[:, 5])) < 0.3
    assert coverage(y_test, calibrated[:, 1], calibrated[:, 5]) == pytest.approx(0.8, abs=0.025)
    assert coverage(y_test, calibrated[:, 0], calibrated[:, 6]) == pytest.approx(0.9, abs=0.02)
    assert coverage(y_test, calibrated[:, 2], calibrated[:, 4]) == pytest.approx(0.5, abs=0.03)
    assert np.mean(y_test <= calibrated[:, 3]) == pytest.approx(0.5, abs=0.025)


class Fixed(RegressorMixin, BaseEstimator):
    """A prefit 'model' that predicts x + value, for MAPIE."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def fit(self, X, y):
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return X[:, 0] + self.value


@pytest.mark.parametrize("symmetric", [True, False])
def test_interval_offsets_match_mapie_cqr(symmetric: bool) -> None:
    """MAPIE's CQR (symmetric or asymmetric correction) on the same legs gives the same interval: an
    independent oracle of the order statistics."""
    rng = np.random.default_rng(3)
    n = 999
    x = rng.normal(50.0, 5.0, size=(n, 1))
    y = x[:, 0] + rng.gamma(2.0, 1.0, n)
    lo_model, hi_model, med_model = (Fixed(v).fit(x, y) for v in (0.5, 3.5, 1.7))
    cqr = ConformalizedQuantileRegressor([lo_model, hi_model, med_model], confidence_level=0.8, prefit=True)
    cqr.conformalize(x, y)
    _, intervals = cqr.predict_interval(x[:5], symmetric_correction=symmetric)
    raw = np.log(np.column_stack([x[:, 0] + 0.5, x[:, 0] + 1.7, x[:, 0] + 3.5]))
    config = CalibrationConfig(layers=(), symmetric=symmetric, min_duration_s=0.0)
    ours = fit_conformal(y, raw, [0.1, 0.5, 0.9], config=config).apply(raw[:5])
    np.testing.assert_allclose(intervals[:, 0, 0], ours[:, 0], atol=1e-9)
    np.testing.assert_allclose(intervals[:, 1, 0], ours[:, 2], atol=1e-9)


def test_a_group_gets_its_own_offsets_only_with_evidence() -> None:
    """Area A (4% of legs) runs 300 s slower than the model says. Its own offsets put it back at nominal
    (and B and C, which the global offsets widened for A's sake, get theirs). Where no area differs, z = 3
    gives none of them offsets of their own and z = 0 gives every one."""
    rng = np.random.default_rng(5)
    n = 40_000

    def draw(shift: float):
        area = rng.choice(np.array(["A", "B", "C"], dtype=object), n, p=[0.04, 0.48, 0.48])
        y = rng.normal(1000.0, 100.0, n) + np.where(area == "A", shift, 0.0)
        return y, area

    raw = np.log(np.tile([1000 - 128.16, 1000.0, 1000 + 128.16], (n, 1)))
    config = CalibrationConfig(layers=("origin_cell",), min_group_size=100, evidence_z=3.0)
    y_cal, area_cal = draw(300.0)
    y_test, area_test = draw(300.0)
    fitted = fit_conformal(y_cal, raw, [0.1, 0.5, 0.9], {"origin_cell": area_cal}, config)
    assert "A" in fitted.stacks["none"][1].offsets
    q = fitted.apply(raw, {"origin_cell": area_test})
    plain = fit_conformal(y_cal, raw, [0.1, 0.5, 0.9], config=NO_LAYERS).apply(raw)
    in_a = area_test == "A"
    assert coverage(y_test[in_a], plain[in_a, 0], plain[in_a, 2]) < 0.5
    for area in ("A", "B", "C"):
        inside = area_test == area
        assert coverage(y_test[inside], q[inside, 0], q[inside, 2]) == pytest.approx(0.8, abs=0.04), area
    # a group never seen in calibration, and keys not given at all, add nothing
    unseen = fitted.apply(raw[:1], {"origin_cell": np.array(["Z"], dtype=object)})
    np.testing.assert_array_equal(unseen, fitted.apply(raw[:1]))
    assert ConformalCalibration.from_dict(fitted.to_dict()) == fitted

    y_same, area_same = draw(0.0)
    keys = {"origin_cell": area_same}
    assert fit_conformal(y_same, raw, [0.1, 0.5, 0.9], keys, config).stacks["none"][1].offsets == {}
    every = CalibrationConfig(layers=("origin_cell",), min_group_size=100, evidence_z=0.0)
    assert set(fit_conformal(y_same, raw, [0.1, 0.5, 0.9], keys, every).stacks["none"][1].offsets) == {
        "A",
        "B",
        "C",
    }


@pytest.mark.parametrize(("outside", "differs"), [(31, True), (29, False), (9, True), (11, False)])
def test_evidence_is_counted_in_binomial_standard_errors(outside: int, differs: bool) -> None:
    # 100 legs, the 80% interval: nominal share outside 0.2, standard error sqrt(0.2 * 0.8 / 100) = 0.04,
    # so z = 2.5 asks for a share at least 0.10 away: 0.31 and 0.09 are, 0.29 and 0.11 are not
    residuals = np.zeros((100, 3))
    residuals[:, 0], residuals[:, 2] = 1.0, -1.0  # inside the interval
    residuals[:outside, 2] = 1.0  # above it
    residuals[:50, 1] = 1.0  # half above the median: the median is as nominal
    assert _differs(residuals, [0.1, 0.5, 0.9], 2.5, 100) is differs


def test_every_caller_profile_has_its_own_stack_and_unknown_ones_take_the_sparest() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    y = rng.normal(1000.0, 100.0, n)
    # the same legs twice: as sent (tight model) and without the courier (a wider truth for the same model)
    raw = np.log(np.tile([950.0, 1000.0, 1050.0], (2 * n, 1)))
    profiles = np.array(["courier"] * n + ["none"] * n, dtype=object)
    y2 = np.concatenate([y, 1000.0 + (y - 1000.0) * 2.0])
    calibration = fit_conformal(y2, raw, [0.1, 0.5, 0.9], {"profile": profiles}, NO_LAYERS)
    assert set(calibration.stacks) == {"courier", "none"}
    widths = {
        p: np.diff(calibration.apply(raw[:1], {"profile": np.array([p], dtype=object)})[0, [0, 2]])[0]
        for p in calibration.stacks
    }
    assert widths["none"] == pytest.approx(2 * widths["courier"], rel=0.1)
    assert calibration.fallback_profile == "none"
    stranger = calibration.apply(raw[:1], {"profile": np.array(["weather"], dtype=object)})
    np.testing.assert_array_equal(
        stranger, calibration.apply(raw[:1], {"profile": np.array(["none"], dtype=object)})
    )


def test_profile_keys_name_the_inputs_a_leg_has() -> None:
    present = {
        "courier": np.array([True, False, True, False]),
        "road_distance": np.array([True, True, False, False]),
        "weather": np.array([True, True, True, True]),
    }
    assert profile_key(present, ("courier", "road_distance")).tolist() == [
        "courier+road_distance",
        "road_distance",
        "courier",
        "none",
    ]
    assert profile_key(present, ()).tolist() == ["none"] * 4


def test_interval_pairs_and_a_calibration_of_an_earlier_version() -> None:
    assert interval_pairs(QUANTILES) == [(2, 4), (1, 5), (0, 6)]
    with pytest.raises(ValueError, match=r"not symmetric around 0\.5"):
        interval_pairs([0.1, 0.5, 0.8])
    old = {"quantiles": [0.5], "global_offsets": [0.1], "segment_offsets": {}, "segment_counts": {}}
    with pytest.raises(ValueError, match="earlier version of lastmile-eta; retrain"):
        ConformalCalibration.from_dict(old)
    with pytest.raises(ValueError, match="unknown calibration layers"):
        CalibrationConfig(layers=("weekday",))


@settings(max_examples=60, deadline=None)
@given(
    raw=st.lists(
        st.lists(st.floats(min_value=-2.0, max_value=12.0), min_size=7, max_size=7), min_size=1, max_size=20
    ),
    labels=st.lists(st.floats(min_value=0.5, max_value=20_000.0), min_size=30, max_size=60),
    space=st.sampled_from(["seconds", "log"]),
    symmetric=st.booleans(),
)
def test_calibrated_quantiles_never_cross_and_never_go_below_the_floor(raw, labels, space, symmetric) -> None:
    """Whatever the boosters say (crossing, tiny, huge) and whatever the labels, the answer is sorted, finite
    and at least `min_duration_s`."""
    rng = np.random.default_rng(len(labels))
    y = np.asarray(labels)
    cal_raw = np.sort(rng.normal(6.0, 1.0, (len(y), 7)), axis=1)
    config = CalibrationConfig(layers=(), space=space, symmetric=symmetric)
    q = fit_conformal(y, cal_raw, QUANTILES, config=config).apply(np.asarray(raw))
    assert np.all(np.isfinite(q))
    assert np.all(q >= config.min_duration_s)
    assert np.all(np.diff(q, axis=1) >= 0)


@pytest.mark.parametrize("hour_dtype", ["Int8", "Int16"])
def test_calibration_keys_match_a_polars_oracle_with_nulls_and_without(hour_dtype: str) -> None:
    """The numpy fast path (no nulls, Int8 bands) and the polars path (nulls) give the keys the plain
    polars expressions give."""
    from features.spec import FeatureSpec
    from models.bundle import calibration_keys

    spec = FeatureSpec()
    columns = [f"{end}_cell_r7" for end in ("origin", "dest")] + [
        f"{end}_region_r6" for end in ("origin", "dest")
    ]
    full = pl.DataFrame(
        {
            "haversine_km": [0.4, 1.5, 2.9, 3.0, 7.5],
            "hour_band": pl.Series([0, 1, 2, 3, 4], dtype=getattr(pl, hour_dtype)),
            "courier_trips": [3, None, 1, None, 8],
            "road_distance_km": [1.0, 2.0, None, None, 9.0],
            "temperature_c": [None, 20.0, None, None, None],
            "precipitation_mm": [None, None, 0.0, None, None],
            **{c: [617700169958293503 + i for i in range(5)] for c in columns},
        }
    )
    holes = full.with_columns(pl.when(pl.int_range(pl.len()) != 2).then(pl.all()))  # row 2: all null
    config = CalibrationConfig(layers=("segment", "origin_cell", "dest_region"))
    for frame in (full, holes):
        keys = calibration_keys(frame, spec, config)
        band = (
            pl.col("haversine_km")
            .fill_null(0.0)
            .cut([1.5, 3.0, 6.0], labels=["lt1.5km", "1.5-3km", "3-6km", "ge6km"], left_closed=True)
            .cast(pl.String)
        )
        oracle = frame.select(
            band.alias("distance"),
            (band + "|" + pl.col("hour_band").cast(pl.String).fill_null("?")).alias("segment"),
            pl.col("origin_cell_r7").fill_null(0).cast(pl.String).alias("origin_cell"),
            pl.col("dest_region_r6").fill_null(0).cast(pl.String).alias("dest_region"),
        )
        for name in oracle.columns:
            assert keys[name].tolist() == oracle[name].to_list(), name
    assert calibration_keys(full, spec, config)["profile"].tolist() == [
        "courier+road_distance",
        "road_distance+weather",
        "courier+weather",
        "none",
        "courier+road_distance",
    ]
