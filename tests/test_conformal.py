"""Conformal offsets: exact order statistics on small samples, coverage guarantees, MAPIE as an oracle."""

from __future__ import annotations

import numpy as np
import pytest

from models.conformal import (
    ConformalCalibration,
    _differs,
    assign_areas,
    conformal_offset,
    fit_conformal,
    rearrange,
)
from models.metrics import coverage


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


def test_calibration_fixes_a_biased_overconfident_model() -> None:
    rng = np.random.default_rng(1)
    quantiles = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    n = 4000
    y_cal, y_test = rng.normal(1.0, 2.0, n), rng.normal(1.0, 2.0, n)
    # a model that is biased low and far too narrow
    q_hat = np.tile(np.linspace(-0.3, 0.3, 7), (n, 1))
    calibration = fit_conformal(y_cal, q_hat, quantiles)
    calibrated = calibration.apply(q_hat)
    assert coverage(y_test, q_hat[:, 1], q_hat[:, 5]) < 0.3
    assert coverage(y_test, calibrated[:, 1], calibrated[:, 5]) == pytest.approx(0.8, abs=0.025)
    assert coverage(y_test, calibrated[:, 0], calibrated[:, 6]) == pytest.approx(0.9, abs=0.02)
    assert np.mean(y_test <= calibrated[:, 3]) == pytest.approx(0.5, abs=0.025)


def test_segment_offsets_with_global_fallback() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    segments = np.array(["short"] * n + ["long"] * n + ["rare"] * 50, dtype=object)
    noise = np.concatenate([rng.normal(0, 1, n), rng.normal(0, 3, n), rng.normal(0, 1, 50)])
    q_hat = np.zeros((len(noise), 3))
    calibration = fit_conformal(noise, q_hat, [0.1, 0.5, 0.9], segments, min_segment_size=500)
    assert set(calibration.segment_offsets) == {"long", "short"}
    assert calibration.segment_counts["rare"] == 50
    assert calibration.segment_offsets["long"][2] > 2 * calibration.segment_offsets["short"][2]
    offsets = calibration.offsets_for(np.array(["rare", "long"], dtype=object), 2)
    assert offsets[0].tolist() == calibration.global_offsets
    assert offsets[1].tolist() == calibration.segment_offsets["long"]
    restored = ConformalCalibration.from_dict(calibration.to_dict())
    assert restored == calibration


def test_rearrangement_removes_crossing_on_adversarial_rows() -> None:
    crossing = np.array([[5.0, 1.0, 3.0], [2.0, 2.0, -1.0], [np.float64(1e9), -1e9, 0.0]])
    fixed = rearrange(crossing)
    assert np.all(np.diff(fixed, axis=1) >= 0)
    assert fixed[0].tolist() == [1.0, 3.0, 5.0]


def test_global_interval_offsets_match_mapie_asymmetric_cqr() -> None:
    """MAPIE's asymmetric CQR on the same residuals gives the same interval (an independent oracle)."""
    mapie = pytest.importorskip("mapie.regression")
    from sklearn.base import BaseEstimator, RegressorMixin

    class Fixed(RegressorMixin, BaseEstimator):
        def __init__(self, value: float = 0.0) -> None:
            self.value = value

        def fit(self, X, y):
            self.n_features_in_ = X.shape[1]
            return self

        def predict(self, X):
            return X[:, 0] + self.value

    rng = np.random.default_rng(3)
    n = 999
    x = rng.normal(size=(n, 1))
    y = x[:, 0] + rng.gamma(2.0, 1.0, n)
    lo_model, hi_model, med_model = (Fixed(v).fit(x, y) for v in (0.5, 3.5, 1.7))
    cqr = mapie.ConformalizedQuantileRegressor(
        [lo_model, hi_model, med_model], confidence_level=0.8, prefit=True
    )
    cqr.conformalize(x, y)
    _, intervals = cqr.predict_interval(x[:5], symmetric_correction=False)
    q_hat = np.column_stack([x[:, 0] + 0.5, x[:, 0] + 3.5])
    ours = fit_conformal(y, q_hat, [0.1, 0.9]).apply(q_hat[:5])
    np.testing.assert_allclose(intervals[:, 0, 0], ours[:, 0], atol=1e-9)
    np.testing.assert_allclose(intervals[:, 1, 0], ours[:, 1], atol=1e-9)


# area keys are H3 cell ids; these stand-ins: cells A, B, C (res 7) inside region X (res 6); 0 = no area
A, B, C, Q, Z, X, Y = 701, 702, 703, 704, 705, 601, 602


def test_area_layer_restores_coverage_in_a_shifted_area() -> None:
    """Known answer: one area is slower (log residual +1.0) than the model and the segment offsets know.
    The global/segment offsets leave it under-covered; its own area offsets put it back at nominal, and
    the areas that were right stay right."""
    rng = np.random.default_rng(3)
    quantiles = [0.1, 0.5, 0.9]
    n = 20000

    def draw():
        area = rng.choice(np.array([A, B, C], dtype=np.int64), n, p=[0.1, 0.45, 0.45])
        y = rng.normal(0.0, 1.0, n) + np.where(area == A, 1.0, 0.0)
        region = np.full(n, X, dtype=np.int64)
        return y, {"origin": [area, region]}

    z = 1.2815515655446004  # the model: N(0, 1) quantiles, right except in area A
    q_hat = np.tile([-z, 0.0, z], (n, 1))
    y_cal, areas_cal = draw()
    y_test, areas_test = draw()
    plain = fit_conformal(y_cal, q_hat, quantiles)
    layered = fit_conformal(y_cal, q_hat, quantiles, areas=areas_cal, min_area_size=500)
    in_a = areas_test["origin"][0] == A
    before = plain.apply(q_hat)
    after = layered.apply(q_hat, areas=areas_test)
    assert coverage(y_test[in_a], before[in_a, 0], before[in_a, 2]) < 0.7
    assert coverage(y_test[in_a], after[in_a, 0], after[in_a, 2]) == pytest.approx(0.8, abs=0.03)
    assert coverage(y_test[~in_a], after[~in_a, 0], after[~in_a, 2]) == pytest.approx(0.8, abs=0.015)
    # the shift is learned as the area's median offset (1.0 minus what the global offsets already moved)
    offset_a = layered.area_layers[0].offsets[A][1] + layered.global_offsets[1]
    assert offset_a == pytest.approx(1.0, abs=0.06)
    # a layer whose keys are not given at apply time adds nothing
    assert np.array_equal(layered.apply(q_hat), plain.apply(q_hat))
    assert ConformalCalibration.from_dict(layered.to_dict()) == layered


def test_area_keys_fall_back_from_fine_to_coarse() -> None:
    # cell A has 6 legs (enough with min 4); B and C have 2 each, so they share their parent X
    fine = np.array([A] * 6 + [B] * 2 + [C] * 2 + [0], dtype=np.int64)
    coarse = np.array([X] * 10 + [0], dtype=np.int64)
    residuals = np.arange(11, dtype=float)
    calibration = fit_conformal(
        residuals, np.zeros((11, 1)), [0.5], areas={"origin": [fine, coarse]}, min_area_size=4
    )
    layer = calibration.area_layers[0]
    assert layer.counts == {A: 6, X: 4}  # the parent counts only the legs no finer area took
    # the median of the residuals left after the global offset (median of 0..10 = 5):
    # area A holds 0..5 -> rank ceil(7 * 0.5) = 4 -> 3 - 5 = -2; area X holds 6..9 -> rank 3 -> 8 - 5 = 3
    assert calibration.global_offsets == [5.0]
    assert layer.offsets == {A: [-2.0], X: [3.0]}
    assign = assign_areas([fine, coarse], np.array(sorted(layer.offsets), dtype=np.int64))
    assert assign.tolist() == [A] * 6 + [X] * 4 + [0]
    # an unseen fine cell inside a known region takes the region's offset; an unknown one takes none
    unseen = layer.offsets_for([np.array([Z, Q], np.int64), np.array([X, Y], np.int64)], 1)
    assert unseen.tolist() == [[3.0], [0.0]]


def test_area_assignment_and_segment_offsets_match_a_plain_oracle() -> None:
    """The binary-search and table lookups give what membership tests and masks give, on random keys
    that include unknown ones, the largest known id and NO_AREA."""
    rng = np.random.default_rng(4)
    known = np.unique(rng.integers(1, 10**15, 40, dtype=np.int64))
    pool = np.concatenate([known, rng.integers(1, 10**15, 40, dtype=np.int64), [0, known[-1] + 1]])
    levels = [rng.choice(pool, 500), rng.choice(pool, 500)]
    expected = np.zeros(500, dtype=np.int64)
    for keys in reversed(levels):
        hit = np.isin(keys, known)
        expected[hit] = keys[hit]
    np.testing.assert_array_equal(assign_areas(levels, known), expected)

    segments = {f"s{i}": rng.normal(size=3).tolist() for i in range(6)}
    calibration = ConformalCalibration([0.1, 0.5, 0.9], [0.1, 0.2, 0.3], segment_offsets=segments)
    legs = rng.choice([*segments, "unseen"], 300).astype(object)
    oracle = np.tile([0.1, 0.2, 0.3], (300, 1))
    for key, offsets in segments.items():
        oracle[legs == key] = offsets
    np.testing.assert_array_equal(calibration.offsets_for(legs, 300), oracle)


def test_calibration_saved_before_area_layers_still_loads() -> None:
    old = {"quantiles": [0.5], "global_offsets": [0.1], "segment_offsets": {}, "segment_counts": {}}
    restored = ConformalCalibration.from_dict(old)
    assert restored.area_layers == []
    assert restored.min_area_size == 0
    applied = restored.apply(np.zeros((2, 1)), areas={"origin": [np.array([A, 0], np.int64)]})
    assert applied.tolist() == [[0.1], [0.1]]


def test_an_area_too_small_for_the_extreme_levels_gets_no_offsets() -> None:
    # 10 legs cannot bound the 0.95 level (rank ceil(11 * 0.95) = 11 > 10): no infinite offsets are kept
    keys = np.array([A] * 10, dtype=np.int64)
    calibration = fit_conformal(
        np.arange(10.0), np.zeros((10, 2)), [0.5, 0.95], areas={"origin": [keys]}, min_area_size=5
    )
    assert calibration.area_layers[0].offsets == {}


def test_an_area_needs_evidence_that_it_differs_for_its_own_offsets() -> None:
    """Areas B and C hold almost every leg and are as the model says; only the small area A (log residual
    +1.0) differs. Without the evidence rule every area with enough legs gets its own (noisy) offsets; with
    z = 3 only A does (~120 legs, a tail share of ~0.39 against 0.1: about 10 standard errors)."""
    rng = np.random.default_rng(5)
    quantiles = [0.1, 0.5, 0.9]
    n = 6000
    area = rng.choice(np.array([A, B, C], dtype=np.int64), n, p=[0.02, 0.49, 0.49])
    y = rng.normal(0.0, 1.0, n) + np.where(area == A, 1.0, 0.0)
    q_hat = np.tile([-1.2815515655446004, 0.0, 1.2815515655446004], (n, 1))
    areas = {"origin": [area]}
    every = fit_conformal(y, q_hat, quantiles, areas=areas, min_area_size=100)
    evident = fit_conformal(y, q_hat, quantiles, areas=areas, min_area_size=100, area_evidence_z=3.0)
    assert set(every.area_layers[0].offsets) == {A, B, C}
    assert set(evident.area_layers[0].offsets) == {A}
    assert evident.area_layers[0].offsets[A] == every.area_layers[0].offsets[A]
    assert ConformalCalibration.from_dict(evident.to_dict()).area_evidence_z == 3.0


@pytest.mark.parametrize(("above", "differs"), [(20, True), (18, False), (0, True), (2, False)])
def test_evidence_is_counted_in_binomial_standard_errors(above: int, differs: bool) -> None:
    # 100 legs at t = 0.9: nominal share above 0.1, standard error sqrt(0.9 * 0.1 / 100) = 0.03, so z = 3
    # asks for a share at least 0.09 away: 0.20 and 0.00 are 0.10 away, 0.18 and 0.02 only 0.08
    residuals = np.full((100, 1), -1.0)
    residuals[:above, 0] = 1.0
    assert _differs(residuals, [0.9], 3.0) is differs


def test_with_the_evidence_rule_regions_come_first_and_cells_only_where_they_differ() -> None:
    """Region X (cells A, B) is slower as a whole (+0.8); inside region Y (cells C, Q) only C is (+0.8).
    Coarse first: X gets region offsets and its cells none (they are like their region); Y's pooled legs
    may or may not differ, but C must get its own offsets on top. Every part then covers ~80%."""
    rng = np.random.default_rng(11)
    quantiles = [0.1, 0.5, 0.9]
    n = 40000
    cells = np.array([A, B, C, Q], dtype=np.int64)

    def draw():
        cell = rng.choice(cells, n)
        region = np.where(np.isin(cell, [A, B]), X, Y).astype(np.int64)
        y = rng.normal(0.0, 1.0, n) + np.where((region == X) | (cell == C), 0.8, 0.0)
        return y, {"origin": [cell, region]}

    q_hat = np.tile([-1.2815515655446004, 0.0, 1.2815515655446004], (n, 1))
    y_cal, areas_cal = draw()
    y_test, areas_test = draw()
    fitted = fit_conformal(y_cal, q_hat, quantiles, areas=areas_cal, min_area_size=500, area_evidence_z=3.0)
    region_layer, cell_layer = fitted.area_layers
    assert (region_layer.level, cell_layer.level) == (1, 0)  # coarse first
    assert X in region_layer.offsets
    assert C in cell_layer.offsets
    assert A not in cell_layer.offsets
    assert B not in cell_layer.offsets
    calibrated = fitted.apply(q_hat, areas=areas_test)
    for cell in cells:
        inside = areas_test["origin"][0] == cell
        assert coverage(y_test[inside], calibrated[inside, 0], calibrated[inside, 2]) == pytest.approx(
            0.8, abs=0.025
        )
    restored = ConformalCalibration.from_dict(fitted.to_dict())
    assert restored == fitted
    assert np.array_equal(restored.apply(q_hat, areas=areas_test), calibrated)


@pytest.mark.parametrize("hour_dtype", ["Int8", "Int16"])
def test_segment_and_area_keys_match_a_polars_oracle_with_nulls_and_without(hour_dtype: str) -> None:
    """The numpy fast path (no nulls, Int8 bands) and the polars path (nulls) give the keys the plain
    polars expressions give."""
    import polars as pl

    from features.spec import FeatureSpec
    from models.bundle import conformal_areas, conformal_segments

    spec = FeatureSpec()
    columns = [f"{end}_cell_r7" for end in ("origin", "dest")] + [
        f"{end}_region_r6" for end in ("origin", "dest")
    ]
    full = pl.DataFrame(
        {
            "haversine_km": [0.4, 1.5, 2.9, 3.0, 7.5],
            "hour_band": pl.Series([0, 1, 2, 3, 4], dtype=getattr(pl, hour_dtype)),
            **{c: [617700169958293503 + i for i in range(5)] for c in columns},
        }
    )
    holes = full.with_columns(pl.when(pl.int_range(pl.len()) != 2).then(pl.all()))  # row 2: all null
    for frame in (full, holes):
        oracle = frame.select(
            pl.col("haversine_km")
            .fill_null(0.0)
            .cut([1.5, 3.0, 6.0], labels=["lt1.5km", "1.5-3km", "3-6km", "ge6km"], left_closed=True)
            .cast(pl.String)
            + "|"
            + pl.col("hour_band").cast(pl.String).fill_null("?")
        ).to_series()
        assert conformal_segments(frame).tolist() == oracle.to_list()
        areas = conformal_areas(frame, spec)
        for end in ("origin", "dest"):
            got = [a.tolist() for a in areas[end]]
            assert got == [
                frame[f"{end}_cell_r7"].fill_null(0).to_list(),
                frame[f"{end}_region_r6"].fill_null(0).to_list(),
            ]
    assert conformal_segments(holes)[2] == "lt1.5km|?"
