"""The travel-time model as pure numpy: path speeds, congestion, detour, noise. No frames, no I/O.

A leg's duration = travel + service at the door + (rarely) an incident delay:
- travel: road km divided by the harmonic mean of the speeds at `PATH_POINTS` points along the straight line,
  where a point's speed is its cell's free-flow speed for the vehicle, cut by the hour's congestion; then x the
  courier's skill, x the rain factor, x any scenario factor; times lognormal noise whose sigma grows with
  distance and with rush hour (right-skewed, heteroscedastic);
- service: lognormal around a per-vehicle median (parking a car takes longer), at least one minute;
- incident: a breakdown, a wrong gate, a police check - more likely at rush hour, exponential size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_contracts.synthetic import couriers as fleet
from data_contracts.synthetic.city import ARTERIAL, CBD, City
from data_contracts.synthetic.scenarios import Scenario
from data_contracts.synthetic.weather import rain_speed_factor

PATH_POINTS = 8
WEEKDAY_CONGESTION = np.array([1.0, 1.0, 1.0, 1.0, 1.1, 0.65, 0.45])  # Monday .. Sunday
NOISE_Z_RANGE = (-2.0, 3.5)  # keeps clean legs under every contract speed limit
SERVICE_SIGMA = 0.45
SERVICE_RANGE_S = (60.0, 1200.0)
INCIDENT_CAP_S = 2700.0
MAX_DURATION_S = 3.9 * 3600  # just under the contract's 4 h: a clean leg is never quarantined
DETOUR_RANGE = (1.15, 2.0)
DETOUR_NOISE_SIGMA = 0.06


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hour - centre) / width) ** 2)


def congestion_index(local_hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """0.08 at night, ~1 at the 07:50 and 17:55 peaks on a weekday; weekends lighter (weekday 0 = Monday)."""
    hour = np.asarray(local_hour, dtype=float)
    base = 0.08 + 0.9 * _bump(hour, 7.8, 1.0) + 1.0 * _bump(hour, 17.9, 1.2) + 0.3 * _bump(hour, 13.0, 2.5)
    return base * WEEKDAY_CONGESTION[np.asarray(weekday)]


def path_cells(
    city: City, o_lat: np.ndarray, o_lng: np.ndarray, d_lat: np.ndarray, d_lng: np.ndarray
) -> np.ndarray:
    """Cell index at `PATH_POINTS` evenly spaced points along each leg's straight line, shape (n, PATH_POINTS)."""
    frac = (np.arange(PATH_POINTS) + 0.5) / PATH_POINTS
    lat = o_lat[:, None] + (d_lat - o_lat)[:, None] * frac[None, :]
    lng = o_lng[:, None] + (d_lng - o_lng)[:, None] * frac[None, :]
    return city.cell_index(lat.ravel(), lng.ravel()).reshape(lat.shape)


def expected_detour(city: City, cells: np.ndarray, straight_km: np.ndarray) -> np.ndarray:
    """Road km / straight km: arterials run straight, residential grids wind, short hops wind most."""
    arterial_share = (city.road_class[cells] == ARTERIAL).mean(axis=1)
    detour = 1.22 + 0.25 * (1.0 - arterial_share) + 0.25 * np.exp(-straight_km / 0.8)
    return np.clip(detour, *DETOUR_RANGE)


@dataclass(frozen=True, eq=False)
class LegTerms:
    """Everything about a leg's duration distribution except the random draws."""

    travel_s: np.ndarray  # median travel seconds
    sigma: np.ndarray  # lognormal sigma of travel
    service_s: np.ndarray  # median service seconds
    incident_p: np.ndarray
    incident_mean_s: np.ndarray

    @property
    def size(self) -> int:
        return int(self.travel_s.size)


def travel_terms(
    city: City,
    cells: np.ndarray,
    road_km: np.ndarray,
    local_hour: np.ndarray,
    weekday: np.ndarray,
    day_index: np.ndarray,
    vehicle: np.ndarray,
    skill: np.ndarray,
    precipitation_mm: np.ndarray,
    scenario: Scenario,
) -> LegTerms:
    """Deterministic terms of each leg's duration distribution (all arrays length n; `cells` is (n, K))."""
    congestion = congestion_index(local_hour, weekday)
    free = np.minimum(
        city.free_speed_kmh[cells] * fleet.VEHICLE_FREE_FACTOR[vehicle][:, None],
        fleet.VEHICLE_MAX_KMH[vehicle][:, None],
    )
    felt = city.congestion_sensitivity[cells] * fleet.VEHICLE_CONGESTION[vehicle][:, None]
    speed = free / (1.0 + congestion[:, None] * felt)
    active = scenario.active(day_index)
    if scenario.district is not None:
        in_district = city.district_mask(scenario.district)[cells] & active[:, None]
        speed = np.where(in_district, speed * scenario.district_speed_factor, speed)
    city_factor = np.where(active, scenario.city_speed_factor, 1.0)
    effective = skill * rain_speed_factor(precipitation_mm) * city_factor / np.mean(1.0 / speed, axis=1)
    rush = np.minimum(congestion, 1.0)
    # the last path point stands for the destination's block; CBD towers (guards, lifts) take longer at the door
    at_door_in_cbd = city.road_class[cells[:, -1]] == CBD
    return LegTerms(
        travel_s=road_km / effective * 3600.0,
        sigma=0.12 + 0.018 * road_km + 0.12 * rush,
        service_s=fleet.VEHICLE_SERVICE_S[vehicle] * np.where(at_door_in_cbd, 1.5, 1.0),
        incident_p=0.015 + 0.03 * rush,
        incident_mean_s=300.0 * (1.0 + road_km / 8.0),
    )


def draw_durations(terms: LegTerms, rng: np.random.Generator, n_draws: int | None = None) -> np.ndarray:
    """Random durations in seconds: shape (n,) or (n_draws, n)."""
    shape = (terms.size,) if n_draws is None else (n_draws, terms.size)
    z = np.clip(rng.standard_normal(shape), *NOISE_Z_RANGE)
    travel = terms.travel_s * np.exp(terms.sigma * z)
    service = np.clip(terms.service_s * np.exp(SERVICE_SIGMA * rng.standard_normal(shape)), *SERVICE_RANGE_S)
    incident = np.where(
        rng.random(shape) < terms.incident_p,
        np.minimum(rng.exponential(1.0, shape) * terms.incident_mean_s, INCIDENT_CAP_S),
        0.0,
    )
    return np.minimum(travel + service + incident, MAX_DURATION_S)
