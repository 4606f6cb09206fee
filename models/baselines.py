"""Baselines every run is compared against; a model that does not beat them is reported as such.

- global: the training window's empirical duration quantiles for every leg;
- cell_hour: empirical quantiles per (origin res-7 cell, destination res-7 cell, hour band), falling back to the
  hour band and then to global where a key has fewer than `min_trips` training legs;
- distance_only: a quantile LightGBM on straight-line distance alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from models.quantile import BoostingParams, LightGBMQuantile

CELL_KEYS = ("origin_cell_r7", "dest_cell_r7", "hour_band")


def global_quantiles(y_train: np.ndarray, n: int, quantiles: Sequence[float]) -> np.ndarray:
    return np.tile(np.quantile(y_train, quantiles), (n, 1))


def _quantile_table(
    frame: pl.DataFrame, keys: Sequence[str], quantiles: Sequence[float], min_trips: int
) -> pl.DataFrame:
    aggs = [
        pl.col("duration_s").quantile(q, interpolation="linear").alias(f"b{i}")
        for i, q in enumerate(quantiles)
    ]
    return (
        frame.group_by(list(keys))
        .agg(pl.len().alias("_n"), *aggs)
        .filter(pl.col("_n") >= min_trips)
        .drop("_n")
    )


def cell_hour_quantiles(
    train: pl.DataFrame,
    y_train: np.ndarray,
    test: pl.DataFrame,
    quantiles: Sequence[float],
    min_trips: int = 20,
) -> np.ndarray:
    """Historical quantiles per (origin cell, destination cell, hour band) with coarser fallbacks."""
    history = train.select(*CELL_KEYS).with_columns(pl.Series("duration_s", y_train))
    k = len(quantiles)
    cols = [f"b{i}" for i in range(k)]
    fine = _quantile_table(history, CELL_KEYS, quantiles, min_trips)
    band = _quantile_table(history, ["hour_band"], quantiles, min_trips)
    fallback = np.quantile(y_train, quantiles)
    keyed = test.select(*CELL_KEYS).with_row_index("_row")
    with_fine = keyed.join(fine, on=list(CELL_KEYS), how="left")
    with_band = keyed.join(band, on="hour_band", how="left")
    fine_values = with_fine.sort("_row").select(cols).to_numpy()
    band_values = with_band.sort("_row").select(cols).to_numpy()
    out = np.where(np.isnan(fine_values), band_values, fine_values)
    return np.where(np.isnan(out), fallback[None, :], out)


def distance_only(
    km_train: np.ndarray, y_train: np.ndarray, km_test: np.ndarray, quantiles: Sequence[float], seed: int = 7
) -> np.ndarray:
    """Quantile boosting on distance alone (log target), 4/5 of the training window to fit, 1/5 to stop."""
    cut = int(len(km_train) * 0.8)
    params = BoostingParams(num_leaves=15, median_rounds=200, spread_rounds=100, seed=seed)
    model = LightGBMQuantile(quantiles=tuple(quantiles), params=params, feature_names=["haversine_km"])
    x = km_train.reshape(-1, 1)
    model.fit(x[:cut], np.log(y_train[:cut]), x[cut:], np.log(y_train[cut:]))
    return np.sort(np.exp(model.predict(km_test.reshape(-1, 1))), axis=1)
