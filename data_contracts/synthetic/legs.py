"""Draw a batch of delivery legs: where, when, who rides, the weather, and how long it took.

Destinations follow customer density; 55% of legs leave the nearest depot, the rest chain from a previous
drop-off nearby. Every random number is drawn in a fixed order and count whatever the scenario, so two
scenarios with the same seed and volume produce the same legs and noise and differ only by their effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from data_contracts.synthetic import couriers as fleet
from data_contracts.synthetic.city import City, haversine_np, offset_points
from data_contracts.synthetic.scenarios import Scenario
from data_contracts.synthetic.traffic import (
    DETOUR_NOISE_SIGMA,
    DETOUR_RANGE,
    draw_durations,
    expected_detour,
    path_cells,
    travel_terms,
)
from data_contracts.synthetic.weather import DailyWeather, leg_weather

# Orders per local hour (deliveries run 06-23, lunch and dinner peaks); the rush profile is commuter hours.
HOUR_WEIGHTS = np.array(
    [0.2, 0.1, 0.1, 0.1, 0.1, 0.3, 1, 3, 4, 4, 5, 6, 8, 8, 6, 5, 5, 6, 8, 8, 6, 4, 2, 0.8]
)
RUSH_HOUR_WEIGHTS = np.zeros(24)
RUSH_HOUR_WEIGHTS[[7, 8, 17, 18, 19]] = 1.0
WEEKDAY_VOLUME = np.array([1.0, 0.98, 0.98, 1.0, 1.08, 1.06, 0.9])  # Monday .. Sunday, mean 1.0
CHAIN_SHARE = 0.45
CHAIN_MEDIAN_KM = 1.6
DEST_JITTER_KM = 0.38
ROAD_KM_RANGE = (0.3, 15.0)
STRAIGHT_KM_RANGE = (0.25, 12.5)


@dataclass(frozen=True, eq=False)
class LegBatch:
    """Arrays of one batch of legs; `local_seconds` counts from local midnight of the leg's day."""

    day_index: np.ndarray
    local_seconds: np.ndarray
    origin_lat: np.ndarray
    origin_lng: np.ndarray
    dest_lat: np.ndarray
    dest_lng: np.ndarray
    road_km: np.ndarray
    vehicle: np.ndarray
    courier: np.ndarray
    precipitation_mm: np.ndarray
    temperature_c: np.ndarray
    duration_s: np.ndarray


def daily_volume(trips_per_day: int, start: date, days: int, scenario: Scenario) -> np.ndarray:
    """Trips on each day of the run: base volume x weekday pattern x the scenario's volume factor."""
    day = np.arange(days)
    weekday = (start.weekday() + day) % 7
    factor = np.where(scenario.active(day), scenario.volume_factor, 1.0)
    return np.round(trips_per_day * WEEKDAY_VOLUME[weekday] * factor).astype(np.int64)


def _hours(u: np.ndarray, rush_share: np.ndarray) -> np.ndarray:
    """Local hour of departure by inverse CDF of the hourly profile, mixed with the rush profile."""
    base, rush = HOUR_WEIGHTS / HOUR_WEIGHTS.sum(), RUSH_HOUR_WEIGHTS / RUSH_HOUR_WEIGHTS.sum()
    hours = np.empty(u.size, dtype=np.int64)
    for share in np.unique(rush_share):
        cdf = np.cumsum((1.0 - share) * base + share * rush)
        mask = rush_share == share
        hours[mask] = np.minimum(np.searchsorted(cdf, u[mask], side="right"), 23)
    return hours


def _places(city: City, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Origins, destinations and the serving depot, rounded to 6 decimals as a GPS log would be."""
    cell = rng.choice(city.n_cells, size=n, p=city.demand_weight)
    jitter_km, jitter_dir = DEST_JITTER_KM * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
    chain, chain_km = rng.random(n) < CHAIN_SHARE, rng.lognormal(np.log(CHAIN_MEDIAN_KM), 0.7, n)
    chain_dir, hop_km = rng.uniform(0, 2 * np.pi, n), rng.uniform(STRAIGHT_KM_RANGE[0], 0.6, n)

    d_lat, d_lng = offset_points(city.cell_lat[cell], city.cell_lng[cell], jitter_km, jitter_dir)
    outside = city.cell_index(d_lat, d_lng) == city.n_cells
    d_lat, d_lng = (
        np.where(outside, city.cell_lat[cell], d_lat),
        np.where(outside, city.cell_lng[cell], d_lng),
    )
    depot = city.nearest_depot(d_lat, d_lng)
    o_lat, o_lng = offset_points(d_lat, d_lng, chain_km, chain_dir)
    use_depot = ~chain | (city.cell_index(o_lat, o_lng) == city.n_cells)
    o_lat, o_lng = (
        np.where(use_depot, city.depot_lat[depot], o_lat),
        np.where(use_depot, city.depot_lng[depot], o_lng),
    )

    straight = haversine_np(o_lat, o_lng, d_lat, d_lng)
    too_short = straight < STRAIGHT_KM_RANGE[0]
    hop_lat, hop_lng = offset_points(d_lat, d_lng, hop_km, chain_dir)
    o_lat, o_lng = np.where(too_short, hop_lat, o_lat), np.where(too_short, hop_lng, o_lng)
    # a far customer is moved towards the origin: the depot stays where it is
    pull = np.minimum(1.0, STRAIGHT_KM_RANGE[1] / np.maximum(straight, 1e-9))
    d_lat, d_lng = o_lat + (d_lat - o_lat) * pull, o_lng + (d_lng - o_lng) * pull
    return (*tuple(np.round(x, 6) for x in (o_lat, o_lng, d_lat, d_lng)), depot)


def draw_legs(
    city: City,
    roster: fleet.Roster,
    weather: DailyWeather,
    start: date,
    day_index: np.ndarray,
    scenario: Scenario,
    rng: np.random.Generator,
) -> LegBatch:
    """Draw `day_index.size` legs (one per entry, on that day of the run) with durations from the model."""
    n = day_index.size
    o_lat, o_lng, d_lat, d_lng, depot = _places(city, rng, n)
    detour_noise = rng.lognormal(0.0, DETOUR_NOISE_SIGMA, n)
    u_vehicle, u_courier, u_hour, u_second = rng.random(n), rng.random(n), rng.random(n), rng.random(n)

    cells = path_cells(city, o_lat, o_lng, d_lat, d_lng)
    straight = haversine_np(o_lat, o_lng, d_lat, d_lng)
    detour = np.clip(expected_detour(city, cells, straight) * detour_noise, *DETOUR_RANGE)
    road_km = np.round(np.clip(straight * detour, *ROAD_KM_RANGE), 3)

    p_bicycle = np.select([road_km < 2.5, road_km < 5.0], [0.25, 0.12], 0.0)
    p_car = 0.05 + 0.01 * road_km
    vehicle = np.select(
        [u_vehicle < p_bicycle, u_vehicle < p_bicycle + p_car], [fleet.BICYCLE, fleet.CAR], fleet.MOTORBIKE
    )
    order, starts, counts = roster.group_table(city.depot_lat.size)
    group = depot * len(fleet.VEHICLES) + vehicle
    courier = order[starts[group] + np.floor(u_courier * counts[group]).astype(np.int64)]

    active = scenario.active(day_index)
    hour = _hours(u_hour, np.where(active, scenario.rush_demand_share, 0.0))
    local_seconds = hour * 3600 + np.floor(u_second * 3600).astype(np.int64)
    local_hour = local_seconds / 3600.0
    weekday = (start.weekday() + day_index) % 7
    precip, temperature = leg_weather(weather, day_index, local_hour, active & scenario.heavy_rain, rng)

    terms = travel_terms(
        city, cells, road_km, local_hour, weekday, day_index, vehicle, roster.skill[courier], precip, scenario
    )
    duration = np.round(draw_durations(terms, rng))
    return LegBatch(
        day_index=day_index,
        local_seconds=local_seconds,
        origin_lat=o_lat,
        origin_lng=o_lng,
        dest_lat=d_lat,
        dest_lng=d_lng,
        road_km=road_km,
        vehicle=vehicle,
        courier=courier,
        precipitation_mm=precip,
        temperature_c=temperature,
        duration_s=duration,
    )
