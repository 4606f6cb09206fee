"""Vehicles and the courier roster: each courier has a home depot, a vehicle and a persistent skill.

The roster for a seed is drawn once at its maximum size, so courier `courier-00042` has the same skill,
vehicle and depot whether a run uses 60 couriers or 600; any code holding only a courier id and the seed
can recover the courier's speed factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

VEHICLES: tuple[str, ...] = ("motorbike", "bicycle", "car")
MOTORBIKE, BICYCLE, CAR = range(3)
# per vehicle: multiplier on a cell's free-flow speed, hard cap (km/h), share of rush-hour slowdown felt
# (motorbikes filter through queues, cars sit in them) and median minutes at the door.
VEHICLE_FREE_FACTOR = np.array([0.95, 1.0, 1.0])
VEHICLE_MAX_KMH = np.array([50.0, 20.0, 65.0])
VEHICLE_CONGESTION = np.array([0.8, 0.2, 1.3])
VEHICLE_SERVICE_S = np.array([150.0, 120.0, 240.0])
# 20-slot cycle (15 motorbikes, 3 bicycles, 2 cars) assigned round the depots, so every depot has every vehicle
VEHICLE_CYCLE = np.array([0, 1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0])
MAX_COURIERS = 10_000
SKILL_SIGMA = 0.15
SKILL_RANGE = (0.75, 1.3)
COURIER_PREFIX = "courier-"
ROSTER_STREAM = 7  # random-stream tag: the roster never shares draws with trips or weather


@dataclass(frozen=True, eq=False)
class Roster:
    """Couriers 0..n-1: vehicle code, home depot and speed multiplier (skill > 1 is faster)."""

    vehicle: np.ndarray
    depot: np.ndarray
    skill: np.ndarray

    @property
    def size(self) -> int:
        return int(self.skill.size)

    def head(self, n: int) -> Roster:
        return Roster(vehicle=self.vehicle[:n], depot=self.depot[:n], skill=self.skill[:n])

    def group_table(self, n_depots: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Couriers sorted by (depot, vehicle) with each group's start offset and size, for vectorized picks."""
        group = self.depot * len(VEHICLES) + self.vehicle
        order = np.argsort(group, kind="stable")
        counts = np.bincount(group, minlength=n_depots * len(VEHICLES))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return order, starts, counts


def courier_count(trips_per_day: int) -> int:
    """A courier rides about 14 legs a day; never fewer than three per depot and vehicle."""
    return int(min(MAX_COURIERS, max(60, round(trips_per_day / 14))))


def build_roster(seed: int, n_depots: int) -> Roster:
    rng = np.random.default_rng([seed, ROSTER_STREAM])
    skill = np.clip(rng.lognormal(0.0, SKILL_SIGMA, MAX_COURIERS), *SKILL_RANGE)
    slot = np.arange(MAX_COURIERS)
    return Roster(
        vehicle=VEHICLE_CYCLE[(slot // n_depots) % VEHICLE_CYCLE.size],
        depot=slot % n_depots,
        skill=skill,
    )


def courier_ids(index: np.ndarray) -> pl.Series:
    """`courier-00042` style ids for roster indices."""
    digits = pl.Series("courier_id", index, dtype=pl.Int64).cast(pl.String).str.zfill(5)
    return pl.select(pl.concat_str(pl.lit(COURIER_PREFIX), digits).alias("courier_id")).to_series()


def courier_index(courier_id: pl.Series) -> np.ndarray:
    """Roster index of each id like `courier-00042`; -1 for nulls and ids that are not ours."""
    number = courier_id.cast(pl.String).str.strip_prefix(COURIER_PREFIX).cast(pl.Int64, strict=False)
    ours = courier_id.cast(pl.String).str.starts_with(COURIER_PREFIX) & number.is_between(0, MAX_COURIERS - 1)
    return np.where(ours.fill_null(False).to_numpy(), number.fill_null(-1).to_numpy(), -1)


def vehicle_codes(vehicle_type: pl.Series) -> np.ndarray:
    """Vehicle code per row; unknown and null types ride as motorbikes (the fleet's majority)."""
    mapping = {"motorbike": MOTORBIKE, "bicycle": BICYCLE, "car": CAR, "van": CAR, "foot": BICYCLE}
    return vehicle_type.replace_strict(mapping, default=MOTORBIKE, return_dtype=pl.Int8).to_numpy()
