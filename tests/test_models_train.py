"""Training on the synthetic city: calibration, baselines, behaviour, monotonicity, artifacts, registry."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from models.bundle import EtaModel, interval_from_quantiles, quantile_at
from models.quantile import BoostingParams
from models.train import TrainConfig, time_windows, train_eta_model


def test_time_windows_follow_each_other(city_trips: pl.DataFrame) -> None:
    windows = time_windows(city_trips, (0.6, 0.2, 0.2))
    assert (len(windows.train), len(windows.calibration), len(windows.test)) == (14, 5, 5)
    assert windows.train[0] == dt.date(2024, 1, 1)
    assert max(windows.train) < min(windows.calibration) <= max(windows.calibration) < min(windows.test)


def test_test_window_is_calibrated(trained) -> None:
    m = trained.metrics
    n = m["n"]
    # binomial standard error at n ~ 7,000 is ~0.005; allow a generous 4 points
    assert n > 5000
    assert m["coverage_80"] == pytest.approx(0.80, abs=0.04)
    assert m["coverage_90"] == pytest.approx(0.90, abs=0.03)
    assert m["coverage_50"] == pytest.approx(0.50, abs=0.05)


def test_model_beats_every_baseline(trained) -> None:
    assert trained.beats_baselines() == {"global": True, "cell_hour": True, "distance_only": True}
    assert trained.metrics["width_80_s"] < trained.baseline_metrics["cell_hour"]["width_80_s"]


def _legs(n: int, dest_offsets_km: np.ndarray) -> pl.DataFrame:
    origin = (-1.2864, 36.8172)  # Nairobi CBD
    dest_lat = origin[0] + dest_offsets_km / 111.0
    start = dt.datetime(2024, 1, 23, 7, 30, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            "trip_id": [f"b{i}" for i in range(n)],
            "origin_lat": [origin[0]] * n,
            "origin_lng": [origin[1]] * n,
            "dest_lat": dest_lat,
            "dest_lng": [origin[1]] * n,
            "start_ts": [start] * n,
            "tz": ["Africa/Nairobi"] * n,
            "vehicle_type": ["motorbike"] * n,
            "road_distance_km": dest_offsets_km * 1.3,
        }
    )


def test_longer_legs_get_later_medians(trained) -> None:
    model: EtaModel = trained.model
    q = model.predict_quantiles(_legs(4, np.array([1.0, 3.0, 6.0, 10.0])))
    median = q[:, model.quantiles.index(0.5)]
    assert np.all(np.diff(median) > 0), median


def test_irrelevant_id_changes_nothing(trained) -> None:
    legs = _legs(3, np.array([1.0, 2.0, 4.0]))
    renamed = legs.with_columns(pl.Series("trip_id", ["x", "y", "z"]))
    np.testing.assert_array_equal(
        trained.model.predict_quantiles(legs), trained.model.predict_quantiles(renamed)
    )


def test_quantiles_never_cross_on_adversarial_legs(trained) -> None:
    legs = _legs(5, np.array([0.0, 0.01, 40.0, 200.0, 3.0])).with_columns(
        pl.Series("vehicle_type", ["foot", None, "van", "car", "spaceship"]),
        pl.Series("road_distance_km", [None, 0.0, 500.0, 1.0, None]),
        pl.Series("precipitation_mm", [None, 80.0, 0.0, None, 1000.0]),
    )
    q = trained.model.predict_quantiles(legs)
    assert np.all(np.isfinite(q))
    assert np.all(q > 0)
    assert np.all(np.diff(q, axis=1) >= 0)


def test_interpolated_levels_sit_between_trained_ones(trained) -> None:
    q = trained.model.predict_quantiles(_legs(3, np.array([1.0, 4.0, 8.0])))
    taus = trained.model.quantiles
    lo85, hi85 = interval_from_quantiles(q, taus, 0.85)
    lo80, hi80 = interval_from_quantiles(q, taus, 0.8)
    lo90, hi90 = interval_from_quantiles(q, taus, 0.9)
    assert np.all((lo90 <= lo85) & (lo85 <= lo80))
    assert np.all((hi80 <= hi85) & (hi85 <= hi90))
    np.testing.assert_allclose(quantile_at(q, taus, 0.9), q[:, taus.index(0.9)])
    with pytest.raises(ValueError, match="wider than the model supports"):
        interval_from_quantiles(q, taus, 0.95)


def test_saved_model_predicts_identically(trained, tmp_path) -> None:
    legs = trained.test_legs.head(200)
    directory = trained.model.save(tmp_path / "bundle")
    assert sorted(p.name for p in (directory / "boosters").iterdir())[0] == "boosters.json"
    assert (directory / "boosters" / "lightgbm_q50.txt").read_text().startswith("tree")
    reloaded = EtaModel.load(directory)
    np.testing.assert_allclose(
        reloaded.predict_quantiles(legs), trained.model.predict_quantiles(legs), rtol=1e-12
    )


def test_test_frame_is_what_the_evaluated_model_predicts(trained) -> None:
    legs = trained.test_legs.head(100)
    q = trained.evaluated.predict_quantiles(legs)
    np.testing.assert_allclose(q[:, 3], trained.test_frame["q50"].head(100).to_numpy(), rtol=1e-12)


def test_the_shipped_model_is_refit_on_the_newest_days(trained) -> None:
    """Refit on every day but the latest calibration-window's worth, calibrated on those days, with the
    snapshot after the last day; the metrics describe the evaluated model, one window earlier."""
    windows = trained.windows
    days = [*windows.train, *windows.calibration, *windows.test]
    n_cal = len(windows.calibration)
    assert trained.refit == {
        "fit_days": f"{days[0]}..{days[-n_cal - 1]}",
        "calibration_days": f"{days[-n_cal]}..{days[-1]}",
    }
    assert trained.model.meta["last_labelled_day"] == str(days[-1])
    assert trained.evaluated.meta["last_labelled_day"] == str(windows.calibration[-1])
    assert trained.model.aggregates.as_of > trained.evaluated.aggregates.as_of
    assert trained.model.calibration.n_calibration > 0
    legs = trained.test_legs.head(50)
    assert not np.array_equal(
        trained.model.predict_quantiles(legs), trained.evaluated.predict_quantiles(legs)
    )


def test_caller_profiles_are_reported_and_calibrated(trained) -> None:
    m = trained.metrics
    for profile in ("no_courier", "no_road_distance", "no_weather", "no_courier_no_road_distance"):
        assert m[f"profile_{profile}_coverage_80"] == pytest.approx(0.80, abs=0.04), profile
        assert m[f"profile_{profile}_width_80_s"] >= m["width_80_s"] * 0.97, profile  # it knows less
    assert set(trained.evaluated.calibration.stacks) == {
        "courier+road_distance+weather",
        "courier+road_distance",
        "courier+weather",
        "road_distance+weather",
        "courier",
        "road_distance",
        "weather",
        "none",
    }


def test_xgboost_path_is_calibrated_too(city_trips: pl.DataFrame) -> None:
    params = BoostingParams(median_rounds=150, max_depth=6, learning_rate=0.15)
    result = train_eta_model(city_trips, TrainConfig(model_kind="xgboost", params=params))
    assert result.metrics["coverage_80"] == pytest.approx(0.80, abs=0.04)
    assert result.metrics["mae_s"] < result.baseline_metrics["global"]["mae_s"]
    assert np.all(np.diff(result.test_frame.select("q05", "q50", "q95").to_numpy(), axis=1) >= 0)


def test_too_little_data_is_a_clear_error(city_trips: pl.DataFrame) -> None:
    one_day = city_trips.filter(pl.col("start_ts").dt.date() == city_trips["start_ts"].min().date())
    with pytest.raises(ValueError, match="at least 3 days"):
        train_eta_model(one_day)
