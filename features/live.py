"""The live executor of the feature definition: the columns `features.build.build_features` computes with a
frozen snapshot, in numpy and plain Python, for the few legs of a live request.

One definition, two executors (like Feast's on-demand views on native Python): `build_features` runs the
polars plan for training, backtests and large batches; on a batch of a few legs its fixed cost per
expression is most of the time, so the service computes the same columns here. Every constant comes from
the `FeatureSpec` and the shared helpers; tests/test_features_live.py proves both executors give the same
features on drawn legs (exact integers and codes, floats to 1e-9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import h3.api.basic_int as h3
import numpy as np

from data_contracts.geo import EARTH_RADIUS_KM
from features.aggregates import FrozenAggregates, LevelIndex
from features.cells import _DIGIT_BITS, _RES_MASK, _RES_SHIFT, H3_MAX_RES
from features.levels import COURIER, HOUR_BAND, chains, distinct_levels
from features.spec import FeatureSpec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INTEGER_KINDS = "iu"


@dataclass
class LiveLegs:
    """A batch of legs as columns: coordinates, UTC departure in epoch microseconds, zone and the optional
    inputs (None or NaN where absent)."""

    origin_lat: np.ndarray
    origin_lng: np.ndarray
    dest_lat: np.ndarray
    dest_lng: np.ndarray
    start_us: np.ndarray  # int64
    tz: list[str]
    courier_id: list[str | None] = field(default_factory=list)
    vehicle_type: list[str | None] = field(default_factory=list)
    road_distance_km: np.ndarray | None = None
    temperature_c: np.ndarray | None = None
    precipitation_mm: np.ndarray | None = None
    trip_id: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.start_us)

    def optional(self, name: str) -> np.ndarray:
        values = getattr(self, name)
        return np.full(len(self), np.nan) if values is None else np.asarray(values, dtype=float)

    def texts(self, name: str) -> list[str | None]:
        return getattr(self, name) or [None] * len(self)


@dataclass
class LiveFeatures:
    """Per column, its values (int64 or float64) and where they are present; `spec.feature_names` then the
    context columns, like `build_features`'s frame."""

    values: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    height: int

    def matrix(self, names: list[str]) -> np.ndarray:
        """Model inputs as float32 (absent values are NaN), as `models.bundle.feature_matrix` gives them."""
        values = np.column_stack([self.values[name] for name in names]).astype(np.float32)
        present = np.column_stack([self.present[name] for name in names])
        values[~present] = np.nan
        return values


class LivePlan:
    """What a spec decides, worked out once per frozen snapshot: the hour-band and weekend tables, the
    vehicle vocabulary, the holiday sets, and the levels in the order they are shrunk (parents first)."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.bands = np.asarray(spec.band_of_hour(), dtype=np.int64)
        self.weekend = np.isin(np.arange(8), spec.weekend_days).astype(np.int64)  # by ISO weekday
        self.vocabulary = {name: i for i, name in enumerate(spec.vehicle_types)}
        self.holidays = {zone: frozenset(days) for zone, days in spec.holidays.items()}
        self.chains = chains(spec)
        self.levels = distinct_levels(spec)
        self.shrink_order: list[tuple[object, object | None]] = []  # (level, its parent), parents first
        seen: set[str] = set()
        for chain in self.chains.values():
            for level, parent in reversed(list(zip(chain, (*chain[1:], None), strict=True))):
                if level.name not in seen:
                    seen.add(level.name)
                    self.shrink_order.append((level, parent))


def parent_cells(cells: np.ndarray, resolution: int) -> np.ndarray:
    """`features.cells.cell_to_parent` on int64 arrays."""
    unused_digits = (1 << (_DIGIT_BITS * (H3_MAX_RES - resolution))) - 1
    return (cells & np.int64(~_RES_MASK)) | np.int64((resolution << _RES_SHIFT) | unused_digits)


def haversine(lat1, lng1, lat2, lng2) -> np.ndarray:
    """`data_contracts.geo.haversine_km`, the same operations in numpy."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = np.radians(lat2 - lat1), np.radians(lng2 - lng1)
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def bearing(lat1, lng1, lat2, lng2) -> np.ndarray:
    """`features.geometry.bearing_deg` in numpy."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dlmb = np.radians(lng2 - lng1)
    y = np.sin(dlmb) * np.cos(phi2)
    x = np.cos(phi1) * np.sin(phi2) - np.sin(phi1) * np.cos(phi2) * np.cos(dlmb)
    return (np.degrees(np.arctan2(y, x)) + 360.0) % 360.0


def cyclic(value: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    """`features.calendar.cyclic` in numpy."""
    angle = np.asarray(value, dtype=float) * (2 * math.pi / period)
    return np.sin(angle), np.cos(angle)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_clock(
    start_us: np.ndarray, zones: list[str], spec: FeatureSpec, plan: LivePlan
) -> dict[str, np.ndarray]:
    """`features.calendar.local_time_stages`: hour, minute of day, day type, weekend, holiday, hour band."""
    n = len(zones)
    hour, minute, weekday, holiday = (np.zeros(n, dtype=np.int64) for _ in range(4))
    none: frozenset = frozenset()
    for i, (us, zone) in enumerate(zip(start_us.tolist(), zones, strict=True)):
        local = (EPOCH + timedelta(microseconds=us)).astimezone(_zone(zone))
        hour[i], minute[i], weekday[i] = local.hour, local.minute, local.isoweekday()
        holiday[i] = local.date() in plan.holidays.get(zone, none)
    if spec.holiday_weekday is not None and holiday.any():
        weekday = np.where(holiday == 1, spec.holiday_weekday, weekday)
    return {
        "local_hour": hour,
        "minute_of_day": hour * 60 + minute,
        "weekday": weekday,
        "is_weekend": plan.weekend[weekday],
        "is_holiday": holiday,
        HOUR_BAND: plan.bands[hour],
    }


def _grid_distance(origin: np.ndarray, dest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out, ok = np.zeros(len(origin), dtype=np.int64), np.zeros(len(origin), dtype=bool)
    for i, (a, b) in enumerate(zip(origin.tolist(), dest.tolist(), strict=True)):
        try:
            out[i], ok[i] = h3.grid_distance(a, b), True
        except Exception:  # h3 cannot measure it (far apart, across pentagons): absent, as in polars
            continue
    return out, ok


def live_features(legs: LiveLegs, frozen: FrozenAggregates, spec: FeatureSpec) -> LiveFeatures:
    """The features of `legs` with the frozen snapshot: what `build_features(legs, frozen, spec)` gives."""
    if frozen.spec != spec:
        raise ValueError(
            f"aggregates were built with spec {frozen.spec.version}, not this spec {spec.version}"
        )
    n = len(legs)
    values: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    every = np.ones(n, dtype=bool)

    def put(name: str, column: np.ndarray, ok: np.ndarray | None = None) -> None:
        values[name] = column
        present[name] = every if ok is None else ok

    # cells: the finest from the point, the others its parents (features.cells.cell_stages)
    finest = spec.finest_resolution
    cells: dict[tuple[str, int], np.ndarray] = {}
    for end, lat, lng in (
        ("origin", legs.origin_lat, legs.origin_lng),
        ("dest", legs.dest_lat, legs.dest_lng),
    ):
        base = np.array(
            [h3.latlng_to_cell(a, b, finest) for a, b in zip(lat.tolist(), lng.tolist(), strict=True)],
            dtype=np.int64,
        )
        for res in spec.resolutions_needed():
            cells[end, res] = base if res == finest else parent_cells(base, res)
    index: LevelIndex = frozen.level_index()
    plan = index.plan
    clock = local_clock(np.asarray(legs.start_us, dtype=np.int64), legs.tz, spec, plan)

    for end in ("origin", "dest"):
        for res in spec.cell_resolutions:
            put(f"{end}_cell_r{res}", cells[end, res])
    km = haversine(legs.origin_lat, legs.origin_lng, legs.dest_lat, legs.dest_lng)
    put("haversine_km", km)
    grid, grid_ok = _grid_distance(
        cells["origin", spec.grid_distance_resolution], cells["dest", spec.grid_distance_resolution]
    )
    put(f"grid_distance_r{spec.grid_distance_resolution}", grid, grid_ok)
    bearing_deg = bearing(legs.origin_lat, legs.origin_lng, legs.dest_lat, legs.dest_lng)
    put("bearing_deg", bearing_deg)
    for name, column in zip(("bearing_sin", "bearing_cos"), cyclic(bearing_deg, 360.0), strict=True):
        put(name, column)
    for name in ("local_hour", "minute_of_day"):
        put(name, clock[name])
    for name, column in zip(("hour_sin", "hour_cos"), cyclic(clock["minute_of_day"], 24 * 60), strict=True):
        put(name, column)
    put("weekday", clock["weekday"])
    for name, column in zip(("weekday_sin", "weekday_cos"), cyclic(clock["weekday"] - 1, 7), strict=True):
        put(name, column)
    for name in ("is_weekend", "is_holiday", HOUR_BAND):
        put(name, clock[name])
    road = legs.optional("road_distance_km")
    put("road_distance_km", road, ~np.isnan(road))
    vocabulary = plan.vocabulary
    vehicles = legs.texts("vehicle_type")
    codes = np.array(
        [vocabulary.get(v, len(vocabulary)) if v is not None else 0 for v in vehicles], dtype=np.int64
    )
    put("vehicle_type_code", codes, np.array([v is not None for v in vehicles], dtype=bool))
    temperature, rain = legs.optional("temperature_c"), legs.optional("precipitation_mm")
    put("temperature_c", temperature, ~np.isnan(temperature))
    put("precipitation_mm", rain, ~np.isnan(rain))
    put("is_raining", (rain > spec.rain_threshold_mm).astype(np.int64), ~np.isnan(rain))
    _aggregate_features(put, index, spec, cells, clock[HOUR_BAND], legs.texts(COURIER), km)
    region = spec.region_resolution
    put("trip_id", np.asarray(legs.texts("trip_id"), dtype=object))
    put(f"origin_region_r{region}", cells["origin", region])
    put(f"dest_region_r{region}", cells["dest", region])
    return LiveFeatures(values, present, n)


def _aggregate_features(put, index: LevelIndex, spec, cells, band, couriers, km) -> None:
    """`features.levels.aggregate_feature_stages` on the frozen snapshot's statistics."""
    n, plan = len(band), index.plan
    keys = {
        HOUR_BAND: band,
        "all_trips": np.zeros(n, dtype=np.int64),
        COURIER: couriers,
        **{f"{end}_cell_r{res}": cells[end, res] for end, res in cells},
    }
    trips, shrunk = {}, {}
    k = spec.shrinkage_trips
    for level, parent in plan.shrink_order:  # the module docstring of features.levels, parents first
        n_level, s_level = index.lookup(level, [keys[key] for key in level.keys])
        trips[level.name] = n_level
        if parent is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                shrunk[level.name] = np.where(n_level > 0, s_level / np.maximum(n_level, 1), np.nan)
        else:
            shrunk[level.name] = (s_level + k * shrunk[parent.name]) / (n_level + k)
    origin, dest, od = plan.chains["origin"][0], plan.chains["dest"][0], plan.chains["od"][0]
    for name, level in (("origin", origin), ("dest", dest), ("od", od)):
        speed = shrunk[level.name]
        put(f"{name}_log_speed", speed, ~np.isnan(speed))
        put(f"{name}_trips", trips[level.name])
    prior = km / np.exp(shrunk[od.name]) * 3600.0
    put("prior_duration_s", prior, ~np.isnan(prior))
    courier, global_level = plan.chains["courier"]
    known = np.array([c is not None for c in couriers], dtype=bool) & (trips[courier.name] > 0)
    factor = shrunk[courier.name] - shrunk[global_level.name]
    put("courier_log_speed_factor", np.where(known, factor, 0.0), known & ~np.isnan(factor))
    put("courier_trips", trips[courier.name], known)
