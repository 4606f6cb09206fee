"""Compiled trees (lleaves): the same predictions as LightGBM, cached by content, refused when they differ."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from models import compiled, quantile
from models.quantile import BoostingParams, LightGBMQuantile


def _regressor(seed: int) -> tuple[LightGBMQuantile, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    y = np.nan_to_num(X[:, 0]) * 0.5 + np.abs(np.nan_to_num(X[:, 1])) + rng.normal(0, 0.3, 3000)
    params = BoostingParams(num_leaves=15, median_rounds=12, spread_rounds=6, num_threads=1, seed=seed)
    model = LightGBMQuantile(quantiles=(0.1, 0.5, 0.9), params=params)
    return model.fit(X[:2400], y[:2400], X[2400:], y[2400:]), X


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    regressor, X = _regressor(seed=1)
    cache = tmp_path_factory.mktemp("compiled")
    todo = compiled.missing_objects(regressor, cache)
    compiled.wait_compiler(compiled.start_compiler(todo), timeout_s=600)
    return regressor, X, cache, todo


def test_compiled_trees_predict_what_lightgbm_predicts(small) -> None:
    regressor, X, cache, todo = small
    assert len(todo) == 3  # one object per booster was missing before compiling
    faster = compiled.compiled_regressor(regressor, cache)
    assert faster.compiled is not None
    assert regressor.compiled is None
    for rows in (X[:1], X):  # one leg and a batch, missing values included
        np.testing.assert_allclose(faster.predict(rows), regressor.predict(rows), rtol=0, atol=1e-12)


def test_boosters_side_by_side_predict_what_they_predict_one_by_one(small, monkeypatch) -> None:
    """A mid-sized batch runs the boosters on a thread each: bit-identical to running them in turn."""
    regressor, X, cache, _ = small
    for model in (regressor, compiled.compiled_regressor(regressor, cache)):
        two = replace(model, params=replace(model.params, num_threads=2))
        monkeypatch.setattr(quantile, "BOOSTERS_SIDE_BY_SIDE_ROWS", len(X) + 1)
        one_by_one = two.predict(X)
        monkeypatch.setattr(quantile, "BOOSTERS_SIDE_BY_SIDE_ROWS", len(X))
        np.testing.assert_array_equal(two.predict(X), one_by_one)
        assert quantile.booster_pool(2) is quantile.booster_pool(2)  # one pool, made once


def test_compiled_objects_are_reused_by_content(small, tmp_path) -> None:
    regressor, _, cache, _ = small
    assert compiled.missing_objects(regressor, cache) == []  # the cache already holds these trees
    other, _ = _regressor(seed=2)
    assert len(compiled.missing_objects(other, cache)) == 3  # other trees, other keys
    with pytest.raises(FileNotFoundError, match="no compiled trees for quantile"):
        compiled.compiled_regressor(other, cache)


def test_native_code_for_other_trees_is_refused(small, tmp_path) -> None:
    """An object that does not reproduce LightGBM (here: the median's code filed under every quantile) is
    never used."""
    regressor, _, cache, _ = small
    paths = compiled.object_paths(compiled.tree_texts(regressor), cache)
    for _q, (text_path, object_path) in paths.items():
        shutil.copy(text_path, tmp_path / text_path.name)
        shutil.copy(paths[0.5][1], tmp_path / object_path.name)
    with pytest.raises(RuntimeError, match="compiled trees differ from LightGBM"):
        compiled.compiled_regressor(regressor, tmp_path)


def test_a_failed_compile_names_the_problem(tmp_path) -> None:
    broken = tmp_path / "broken.txt"
    broken.write_text("not a LightGBM model\n")
    with pytest.raises(RuntimeError, match="compiling trees failed"):
        compiled.wait_compiler(compiled.start_compiler([broken]), timeout_s=120)
    assert not broken.with_suffix(".o").exists()


def test_the_check_rows_come_from_every_split_of_every_booster(small) -> None:
    """The thresholds read from LightGBM's JSON dump are exactly those of its own pandas view of the trees."""
    regressor, _, _, _ = small
    for booster in regressor.boosters.values():
        names = booster.feature_name()
        ours = sorted(
            (names[feature], threshold)
            for tree in booster.dump_model()["tree_info"]
            for feature, threshold in compiled._splits(tree["tree_structure"])
        )
        view = booster.trees_to_dataframe()[["split_feature", "threshold"]].dropna()
        assert ours == sorted(zip(view["split_feature"], view["threshold"].astype(float), strict=True))
        assert len(ours) > 10
    rows = compiled._check_rows(regressor)
    assert rows.shape == (compiled.CHECK_ROWS, 6)
    assert 0 < np.isnan(rows).mean() < 0.1  # some values missing, as promised
