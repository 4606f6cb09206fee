"""Labelled monitoring frames for the drift tests: every watched column, numeric inputs ~ N(10, 2)."""

from __future__ import annotations

import numpy as np
import polars as pl

from models.drift import CATEGORICAL_INPUTS, NUMERIC_INPUTS


def drawn_monitoring(n: int, seed: int, rainy_share: float | None = None) -> pl.DataFrame:
    """With `rainy_share`, the weather is rain on that share of legs (a ~10 mm/h shower, 2 °C colder) and
    every other column the same distribution whatever the share; without, weather is like any input."""
    rng = np.random.default_rng(seed)
    rain = None if rainy_share is None else rng.random(n) < rainy_share
    numeric = {c: rng.normal(10.0, 2.0, n) for c in NUMERIC_INPUTS}
    if rain is not None:
        numeric["precipitation_mm"] = np.where(rain, rng.gamma(4.0, 2.5, n), 0.0)
        numeric["temperature_c"] = 22.0 - 2.0 * rain + rng.normal(0.0, 0.5, n)
    categorical = {c: rng.choice(["a", "b", "c"], n) for c in CATEGORICAL_INPUTS}
    if rain is not None:
        categorical["is_raining"] = np.where(rain, "1", "0")
    extra = {
        "pred_log_q50": rng.normal(7.0, 0.5, n),
        "pred_log_width_80": rng.normal(6.0, 0.3, n),
        "log_residual": rng.normal(0.0, 0.3, n),
        "covered_80": rng.random(n) < 0.8,
        "covered_90": rng.random(n) < 0.9,
        "segment": rng.choice(["x", "y"], n),
    }
    return pl.DataFrame({**numeric, **categorical, **extra})
