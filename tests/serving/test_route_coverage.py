"""Behaviour on the synthetic city: /route_eta's windows for later stops cover the simulated arrivals.

Routes are couriers' own sequences of customers; actual arrivals are simulated leg by leg with the city's
travel-time model, each leg starting when the courier really left the previous stop. The service is set up
as a deployment would be: the legs' correlation is estimated from fresh data first.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from data_contracts.synthetic import build_model, simulate_trips
from data_contracts.synthetic.city import haversine_np
from data_contracts.synthetic.traffic import expected_detour, path_cells
from serving import route
from serving.schemas import LegContext, Point, RouteEta, Stop
from tests.serving.conftest import CITY_DAYS, CITY_SEED, CITY_START
from tests.serving.payloads import NAIROBI

N_ROUTES, N_STOPS, N_RUNS, SERVICE_S = 24, 8, 60, 90.0
LATER_STOPS = slice(3, None)  # the 4th stop onwards: sums of several uncertain legs
DAY_INDEX = CITY_DAYS + 1  # the day after the training window


def courier_routes(trips: pl.DataFrame) -> list[dict]:
    """One route per courier and local day: the origin of their first leg, then that day's customers."""
    local_day = pl.col("start_ts").dt.convert_time_zone(NAIROBI).dt.date().alias("local_day")
    routes = []
    days = (
        trips.with_columns(local_day)
        .sort("start_ts")
        .group_by("courier_id", "local_day", maintain_order=True)
    )
    for _, legs in days:
        if legs.height < N_STOPS:
            continue
        legs = legs.head(N_STOPS)
        origin = (legs["origin_lat"][0], legs["origin_lng"][0])
        stops = list(zip(legs["dest_lat"].to_list(), legs["dest_lng"].to_list(), strict=True))
        routes.append(
            {
                "courier_id": legs["courier_id"][0],
                "vehicle_type": legs["vehicle_type"][0],
                "origin": origin,
                "stops": stops,
                "road_km": road_km([origin, *stops]),
                # spread departures over the working day, on the day after training
                "departure": datetime.combine(
                    CITY_START + timedelta(days=DAY_INDEX), datetime.min.time(), UTC
                )
                + timedelta(hours=5 + len(routes) % 8, minutes=7 * len(routes)),
            }
        )
        if len(routes) == N_ROUTES:
            return routes
    raise AssertionError(f"the city has fewer than {N_ROUTES} courier-days with {N_STOPS} legs")


def road_km(points: list[tuple[float, float]]) -> list[float]:
    """Road distance of each leg as the routing layer would send it (the city's expected detour)."""
    city = build_model(CITY_SEED).city
    o_lat, o_lng = (np.array([p[k] for p in points[:-1]]) for k in (0, 1))
    d_lat, d_lng = (np.array([p[k] for p in points[1:]]) for k in (0, 1))
    straight = haversine_np(o_lat, o_lng, d_lat, d_lng)
    return (straight * expected_detour(city, path_cells(city, o_lat, o_lng, d_lat, d_lng), straight)).tolist()


def served_windows(service, route: dict) -> RouteEta:
    answer = asyncio.run(
        service.route_eta(
            origin=Point(lat=route["origin"][0], lng=route["origin"][1]),
            departure_time=route["departure"],
            tz=NAIROBI,
            stops=[
                Stop(lat=lat, lng=lng, service_time_s=SERVICE_S, road_distance_km=km)
                for (lat, lng), km in zip(route["stops"], route["road_km"], strict=True)
            ],
            context=LegContext(
                courier_id=route["courier_id"],
                vehicle_type=route["vehicle_type"],
                temperature_c=22.0,
                precipitation_mm=0.0,
            ),
            levels=[0.8, 0.9],
            seed=0,
        )
    )
    assert isinstance(answer, RouteEta), getattr(answer, "body", answer)
    return answer


def simulated_arrivals(route: dict, rng: np.random.Generator) -> np.ndarray:
    """(N_RUNS, N_STOPS) seconds from departure to each stop, each leg starting when the last one ended."""
    city = build_model(CITY_SEED)
    elapsed = np.zeros(N_RUNS)
    points = [route["origin"], *route["stops"]]
    arrivals = np.empty((N_RUNS, N_STOPS))
    for i in range(N_STOPS):
        start = pl.Series([route["departure"]] * N_RUNS) + pl.Series(elapsed * 1e6).cast(pl.Duration("us"))
        legs = pl.DataFrame(
            {
                "origin_lat": [points[i][0]] * N_RUNS,
                "origin_lng": [points[i][1]] * N_RUNS,
                "dest_lat": [points[i + 1][0]] * N_RUNS,
                "dest_lng": [points[i + 1][1]] * N_RUNS,
                "start_ts": start,
                "courier_id": [route["courier_id"]] * N_RUNS,
                "vehicle_type": [route["vehicle_type"]] * N_RUNS,
                "precipitation_mm": [0.0] * N_RUNS,
                "road_distance_km": [route["road_km"][i]] * N_RUNS,
            }
        )
        arrivals[:, i] = elapsed + city.sample_durations(legs, DAY_INDEX, "stationary", rng)
        elapsed = arrivals[:, i] + SERVICE_S
    return arrivals


@pytest.fixture(scope="module")
def estimated_rho(champion) -> float:
    """The copula's rho, estimated as a deployment would: latent scores of consecutive legs of one courier
    on one day, on fresh legs the model never saw (three days after the training window)."""
    fresh = simulate_trips(6_000, seed=CITY_SEED, start=CITY_START + timedelta(days=DAY_INDEX), days=3)
    legs = fresh.with_columns(
        pl.col("start_ts").dt.convert_time_zone(NAIROBI).dt.date().alias("local_day")
    ).sort("courier_id", "start_ts")
    q = champion.model.predict_quantiles(legs)
    z = route.latent_scores_of(q, champion.model.quantiles, legs["duration_s"].to_numpy())
    same_day = (legs["courier_id"] == legs["courier_id"].shift(1)) & (
        legs["local_day"] == legs["local_day"].shift(1)
    )
    after = np.flatnonzero(same_day.fill_null(False).to_numpy())
    return route.leg_correlation(z[after - 1], z[after])


def coverage_with(rho: float, city_trips: pl.DataFrame) -> dict[float, np.ndarray]:
    """Per level: for every route, run and stop, whether the simulated arrival fell in the served window."""
    from serving.service import EtaService

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ETA_SERVE_ROUTE_LEG_CORRELATION", str(rho))
        service = EtaService()
    service.predictor.wait_for_model()
    rng = np.random.default_rng(2026)
    inside: dict[float, list[np.ndarray]] = {0.8: [], 0.9: []}
    for one_route in courier_routes(city_trips):
        answer = served_windows(service, one_route)
        assert answer.leg_correlation == rho
        actual = simulated_arrivals(one_route, rng)
        for j, level in enumerate((0.8, 0.9)):
            lower = np.array([stop.windows[j].lower_s for stop in answer.stops])
            upper = np.array([stop.windows[j].upper_s for stop in answer.stops])
            inside[level].append((actual >= lower) & (actual <= upper))
    return {level: np.stack(runs) for level, runs in inside.items()}  # (routes, runs, stops)


@pytest.fixture(scope="module")
def coverage(estimated_rho, city_trips) -> dict[float, np.ndarray]:
    return coverage_with(estimated_rho, city_trips)


def test_consecutive_legs_are_slightly_correlated(estimated_rho) -> None:
    """A courier's legs share the courier (and the model's error about them): small but positive."""
    assert 0.01 < estimated_rho < 0.3


def test_80_percent_windows_of_later_stops_hold_about_80_percent(coverage) -> None:
    later = coverage[0.8][:, :, LATER_STOPS]
    assert later.mean() == pytest.approx(0.8, abs=0.04)
    per_stop = later.mean(axis=(0, 1))  # and no later stop position is far off
    assert per_stop.min() > 0.72
    assert per_stop.max() < 0.88
    assert coverage[0.8][:, :, 0].mean() == pytest.approx(0.8, abs=0.05)  # the first stop is one leg


def test_90_percent_windows_of_later_stops_hold_about_90_percent(coverage) -> None:
    assert coverage[0.9][:, :, LATER_STOPS].mean() == pytest.approx(0.9, abs=0.04)


def test_assuming_independent_legs_would_under_cover(coverage, city_trips, estimated_rho) -> None:
    independent = coverage_with(0.0, city_trips)
    assert independent[0.8][:, :, LATER_STOPS].mean() < coverage[0.8][:, :, LATER_STOPS].mean() - 0.02
