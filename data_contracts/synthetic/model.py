"""`CityModel`: the simulated city's travel-time model for arbitrary legs given as a polars frame.

Other code uses it to simulate actual arrivals (e.g. a multi-stop route) and to get the true duration
quantiles of a leg. Legs need `origin_lat`, `origin_lng`, `dest_lat`, `dest_lng` and `start_ts` (UTC; naive
is read as UTC); `courier_id`, `vehicle_type`, `road_distance_km` and `precipitation_mm` are used when present
(unknown courier -> skill 1.0, unknown vehicle -> motorbike, no road distance -> the expected detour,
no precipitation -> dry; on `rain_week` storm days precipitation is at least heavy rain whatever the frame says).
`day_index` (an int or one per leg) counts days from the run's start and only decides whether the scenario is
on; pass a `Scenario` from `make_scenario(name, days, onset_day)` to match a run, a bare name means a 60-day
run with onset day 30.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
import polars as pl

from data_contracts.synthetic import couriers as fleet
from data_contracts.synthetic import geography as geo
from data_contracts.synthetic.city import City, build_city, haversine_np
from data_contracts.synthetic.scenarios import Scenario, resolve_scenario
from data_contracts.synthetic.traffic import (
    LegTerms,
    draw_durations,
    expected_detour,
    path_cells,
    travel_terms,
)
from data_contracts.synthetic.weather import HEAVY_RAIN_MM_H

MAX_DRAW_CELLS = 4_000_000  # Monte Carlo chunk size (legs x draws) for `true_quantiles`


def _column(legs: pl.DataFrame, name: str, dtype: pl.DataType) -> pl.Series:
    if name in legs.columns:
        return legs.get_column(name).cast(dtype, strict=False)
    return pl.Series(name, [None] * legs.height, dtype=dtype)


def _local_clock(legs: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Fractional local hour and weekday (0 = Monday) of each departure."""
    start = pl.col("start_ts")
    if legs.schema["start_ts"].time_zone is None:  # type: ignore[union-attr]
        start = start.dt.replace_time_zone("UTC")
    local = legs.select(start.dt.convert_time_zone(geo.TZ).alias("t")).select(
        (pl.col("t").dt.hour() + pl.col("t").dt.minute() / 60 + pl.col("t").dt.second() / 3600).alias("hour"),
        (pl.col("t").dt.weekday() - 1).alias("weekday"),
    )
    return local["hour"].to_numpy().astype(float), local["weekday"].to_numpy().astype(np.int64)


@dataclass(frozen=True, eq=False)
class CityModel:
    """The static city plus the courier roster of one seed."""

    city: City
    roster: fleet.Roster
    seed: int

    def leg_terms(
        self, legs: pl.DataFrame, day_index: int | np.ndarray, scenario: Scenario | str
    ) -> LegTerms:
        """The deterministic part of each leg's duration distribution."""
        scenario = resolve_scenario(scenario)
        n = legs.height
        o_lat, o_lng, d_lat, d_lng = (legs.get_column(c).cast(pl.Float64).to_numpy() for c in _COORDS)
        cells = path_cells(self.city, o_lat, o_lng, d_lat, d_lng)
        straight = haversine_np(o_lat, o_lng, d_lat, d_lng)
        road_km = _column(legs, "road_distance_km", pl.Float64()).to_numpy().astype(float)
        road_km = np.where(np.isnan(road_km), straight * expected_detour(self.city, cells, straight), road_km)
        courier = fleet.courier_index(_column(legs, "courier_id", pl.String()))
        skill = np.where(courier >= 0, self.roster.skill[np.maximum(courier, 0)], 1.0)
        vehicle = fleet.vehicle_codes(_column(legs, "vehicle_type", pl.String()))
        days = np.broadcast_to(np.asarray(day_index, dtype=np.int64), (n,))
        precip = np.nan_to_num(
            _column(legs, "precipitation_mm", pl.Float64()).to_numpy().astype(float), nan=0.0
        )
        storm = scenario.active(days) & scenario.heavy_rain
        precip = np.where(storm, np.maximum(precip, HEAVY_RAIN_MM_H), precip)
        hour, weekday = _local_clock(legs)
        return travel_terms(self.city, cells, road_km, hour, weekday, days, vehicle, skill, precip, scenario)

    def sample_durations(
        self,
        legs: pl.DataFrame,
        day_index: int | np.ndarray,
        scenario: Scenario | str,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """One simulated duration (seconds) per leg, as the generator would have recorded it (unrounded)."""
        return draw_durations(self.leg_terms(legs, day_index, scenario), rng)

    def true_quantiles(
        self,
        legs: pl.DataFrame,
        day_index: int | np.ndarray,
        scenario: Scenario | str,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        n_draws: int = 2000,
        seed: int = 0,
    ) -> np.ndarray:
        """Monte Carlo quantiles of each leg's duration, shape (n_legs, len(quantiles))."""
        terms = self.leg_terms(legs, day_index, scenario)
        rng = np.random.default_rng(seed)
        out = np.empty((terms.size, len(quantiles)))
        chunk = max(1, MAX_DRAW_CELLS // n_draws)
        for lo in range(0, terms.size, chunk):
            part = LegTerms(**{f.name: getattr(terms, f.name)[lo : lo + chunk] for f in fields(LegTerms)})
            out[lo : lo + chunk] = np.quantile(draw_durations(part, rng, n_draws), quantiles, axis=0).T
        return out

    def district_share(self, legs: pl.DataFrame, district: str) -> np.ndarray:
        """Fraction of each leg's path points inside the district (1.0 = entirely inside)."""
        coords = (legs.get_column(c).cast(pl.Float64).to_numpy() for c in _COORDS)
        cells = path_cells(self.city, *coords)
        return self.city.district_mask(district)[cells].mean(axis=1)


_COORDS = ("origin_lat", "origin_lng", "dest_lat", "dest_lng")


@lru_cache(maxsize=8)
def build_model(seed: int) -> CityModel:
    """The city with the courier roster of `seed` (the roster the generator used for that seed)."""
    city = build_city()
    return CityModel(city=city, roster=fleet.build_roster(seed, city.depot_lat.size), seed=seed)
