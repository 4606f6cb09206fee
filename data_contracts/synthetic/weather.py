"""Nairobi-like weather: rainy days by season (long rains Mar-May, short rains Oct-Dec), afternoon showers.

A day's weather depends only on the seed and the calendar date, so two runs that share dates share weather.
Rain slows every vehicle: speed x `1 - 0.25 * min(precipitation / HEAVY_RAIN_MM_H, 1)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

HEAVY_RAIN_MM_H = 8.0
RAIN_SLOWDOWN_AT_HEAVY = 0.25
WEATHER_STREAM = 11  # random-stream tag
# January .. December
RAIN_DAY_PROBABILITY = np.array([0.15, 0.12, 0.3, 0.55, 0.45, 0.15, 0.1, 0.1, 0.1, 0.25, 0.5, 0.3])
MEAN_TEMPERATURE_C = np.array([19.5, 20.5, 21.0, 20.5, 19.5, 18.0, 17.0, 17.5, 19.0, 20.0, 19.5, 19.0])
DIURNAL_AMPLITUDE_C = 5.0


@dataclass(frozen=True, eq=False)
class DailyWeather:
    """One entry per day of a run."""

    rainy: np.ndarray
    intensity_mm_h: np.ndarray  # peak-shower intensity on rainy days
    mean_temperature_c: np.ndarray


def daily_weather(seed: int, start: date, days: int) -> DailyWeather:
    rainy, intensity, temperature = np.zeros(days, bool), np.zeros(days), np.zeros(days)
    for i in range(days):
        day = start + timedelta(days=i)
        rng = np.random.default_rng([seed, WEATHER_STREAM, day.toordinal()])
        rainy[i] = rng.random() < RAIN_DAY_PROBABILITY[day.month - 1]
        intensity[i] = rng.gamma(2.0, 2.0)
        temperature[i] = MEAN_TEMPERATURE_C[day.month - 1] + rng.normal(0.0, 1.2) - 1.5 * rainy[i]
    return DailyWeather(rainy=rainy, intensity_mm_h=intensity, mean_temperature_c=temperature)


def leg_weather(
    weather: DailyWeather,
    day_index: np.ndarray,
    local_hour: np.ndarray,
    heavy_rain: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Precipitation (mm/h, 0.1 mm steps) and temperature (°C, 0.1 steps) at each departure.

    `heavy_rain` marks legs on scenario storm days: at least `HEAVY_RAIN_MM_H` whatever the hour.
    Draws the same random numbers whatever `heavy_rain` says, so scenarios share every other draw.
    """
    n = local_hour.size
    shower_shape = 0.25 + 0.75 * np.exp(-0.5 * ((local_hour - 16.5) / 2.5) ** 2)
    burst, storm_extra, temp_noise = (
        rng.lognormal(0.0, 0.6, n),
        rng.gamma(2.0, 2.0, n),
        rng.normal(0.0, 0.5, n),
    )
    precip = np.where(weather.rainy[day_index], weather.intensity_mm_h[day_index] * shower_shape * burst, 0.0)
    precip = np.where(heavy_rain, np.maximum(precip, HEAVY_RAIN_MM_H + storm_extra), precip)
    diurnal = DIURNAL_AMPLITUDE_C * np.sin(2 * np.pi * (local_hour - 9.0) / 24.0)
    temperature = weather.mean_temperature_c[day_index] + diurnal + temp_noise - 2.0 * heavy_rain
    return np.round(precip, 1), np.round(temperature, 1)


def rain_speed_factor(precipitation_mm_h: np.ndarray) -> np.ndarray:
    """Multiplier on travel speed: 1 when dry, 0.75 at or above heavy rain."""
    wetness = np.clip(np.nan_to_num(precipitation_mm_h, nan=0.0) / HEAVY_RAIN_MM_H, 0.0, 1.0)
    return 1.0 - RAIN_SLOWDOWN_AT_HEAVY * wetness
