"""The static simulated city: H3 service cells with a road class, a district and a free-flow speed.

Cells are H3 res-8 hexagons within `SERVICE_RADIUS_KM` of the centre (minus the national park). Each cell is
`residential`, `arterial` (on one of the named roads) or `cbd`; one extra pseudo-cell, index `n_cells`, stands
for everything outside the service area.

Point -> cell lookups for millions of points use a ~45 m raster of the H3 cells built once. A pixel whose four
corners share one hexagon lies inside it (hexagons are convex), so the raster is exact there; ~11% of pixels
straddle an edge. `cell_index(..., exact=True)` resolves those points with H3 itself; the default (used for
the path points that sample the speed field) takes the cell of the pixel's centre, so a point within ~30 m
of a hexagon edge may be read as the neighbouring cell. That is the model's definition of "the cell of a path
point"; H3 itself (polars-h3, ~1 µs a point) would make a million legs several times slower.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import h3
import numpy as np
import polars as pl
import polars_h3 as plh3

from data_contracts.synthetic import geography as geo

CITY_SEED = 20_240_521  # the city layout is fixed: one Nairobi for every run
KM_PER_DEG = 111.195
RASTER_STEP_DEG = 0.0004
RASTER_MARGIN_KM = 4.0

ROAD_CLASSES: tuple[str, ...] = ("residential", "arterial", "cbd", "outside")
RESIDENTIAL, ARTERIAL, CBD, OUTSIDE = range(4)
FREE_SPEED_KMH = np.array([26.0, 48.0, 18.0, 22.0])  # by road class
CONGESTION_SENSITIVITY = np.array([0.75, 1.0, 1.25, 0.6])  # how much rush hour slows each class
DEMAND_BY_CLASS = np.array([1.0, 0.6, 1.5, 0.0])


def haversine_np(lat1: np.ndarray, lng1: np.ndarray, lat2: np.ndarray, lng2: np.ndarray) -> np.ndarray:
    """Great-circle km between arrays of points (numpy twin of `data_contracts.geo.haversine_km`)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    a = (
        np.sin((phi2 - phi1) / 2) ** 2
        + np.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lng2 - lng1) / 2) ** 2
    )
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def offset_points(
    lat: np.ndarray, lng: np.ndarray, km: np.ndarray, bearing_rad: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move points `km` along a bearing (0 = north), flat-earth: exact enough over a city."""
    dlat = km * np.cos(bearing_rad) / KM_PER_DEG
    dlng = km * np.sin(bearing_rad) / (KM_PER_DEG * np.cos(np.radians(lat)))
    return lat + dlat, lng + dlng


@dataclass(frozen=True, eq=False)
class City:
    """Per-cell arrays (length n_cells, or n_cells + 1 where the last entry is the outside pseudo-cell)."""

    cells: np.ndarray  # uint64 H3 ids, sorted
    cell_lat: np.ndarray
    cell_lng: np.ndarray
    road_class: np.ndarray  # n_cells + 1
    district: np.ndarray  # n_cells + 1, -1 outside
    district_names: tuple[str, ...]
    free_speed_kmh: np.ndarray  # n_cells + 1
    congestion_sensitivity: np.ndarray  # n_cells + 1
    demand_weight: np.ndarray  # n_cells, sums to 1
    depot_names: tuple[str, ...]
    depot_lat: np.ndarray
    depot_lng: np.ndarray
    raster: np.ndarray  # int32 cell index of each pixel (of its centre where it straddles an edge)
    raster_edge: np.ndarray  # bool: the pixel straddles a hexagon edge
    raster_lat0: float
    raster_lng0: float

    @property
    def n_cells(self) -> int:
        return int(self.cells.size)

    def cell_index(self, lat: np.ndarray, lng: np.ndarray, exact: bool = False) -> np.ndarray:
        """Index of the service cell containing each point; `n_cells` when outside the service area."""
        lat, lng = np.asarray(lat, dtype=float), np.asarray(lng, dtype=float)
        rows = (lat - self.raster_lat0) / RASTER_STEP_DEG
        cols = (lng - self.raster_lng0) / RASTER_STEP_DEG
        n_rows, n_cols = self.raster.shape
        inside = (rows >= 0) & (rows < n_rows) & (cols >= 0) & (cols < n_cols)  # False for NaN too
        pixel = np.where(inside, rows, 0).astype(np.int64) * n_cols + np.where(inside, cols, 0).astype(
            np.int64
        )
        index = np.where(inside, self.raster.ravel()[pixel], self.n_cells)
        if exact:
            edge = np.flatnonzero(inside & self.raster_edge.ravel()[pixel])
            index[edge] = _to_index(self.cells, _h3_ids(lat[edge], lng[edge]))
        return index

    def district_index(self, name: str) -> int:
        if name not in self.district_names:
            raise KeyError(f"unknown district {name!r}; known: {', '.join(self.district_names)}")
        return self.district_names.index(name)

    def district_mask(self, name: str) -> np.ndarray:
        """Boolean over cell indices (length n_cells + 1) marking the district's cells."""
        return self.district == self.district_index(name)

    def district_cells(self, name: str) -> list[str]:
        """The district's H3 cells as hex strings, sorted."""
        return [h3.int_to_str(int(c)) for c in self.cells[self.district_mask(name)[:-1]]]

    def nearest_depot(self, lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
        """Index of the closest depot (flat-earth distance: near the equator and within a city, exact enough)."""
        d_lat = lat[:, None] - self.depot_lat[None, :]
        d_lng = (lng[:, None] - self.depot_lng[None, :]) * np.cos(np.radians(geo.CENTRE[0]))
        return np.argmin(d_lat**2 + d_lng**2, axis=1)


def _service_cells() -> np.ndarray:
    centre = h3.latlng_to_cell(*geo.CENTRE, geo.H3_RESOLUTION)
    k = (
        int(np.ceil(geo.SERVICE_RADIUS_KM / (np.sqrt(3) * h3.average_hexagon_edge_length(geo.H3_RESOLUTION))))
        + 2
    )
    cells = np.array(sorted(h3.str_to_int(c) for c in h3.grid_disk(centre, k)), dtype=np.uint64)
    lat, lng = _centres(cells)
    lat_min, lat_max, lng_min, lng_max = geo.PARK_BOX
    in_park = (lat >= lat_min) & (lat <= lat_max) & (lng >= lng_min) & (lng <= lng_max)
    near = haversine_np(lat, lng, np.full_like(lat, geo.CENTRE[0]), np.full_like(lng, geo.CENTRE[1]))
    return cells[(near <= geo.SERVICE_RADIUS_KM) & ~in_park]


def _centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cells])
    return points[:, 0], points[:, 1]


def _arterial_cells() -> set[int]:
    found: set[int] = set()
    for waypoints in geo.ARTERIALS.values():
        ends = [h3.latlng_to_cell(lat, lng, geo.H3_RESOLUTION) for lat, lng in waypoints]
        for a, b in itertools.pairwise(ends):
            found.update(h3.str_to_int(c) for c in h3.grid_path_cells(a, b))
    return found


def _h3_ids(lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    """H3 ids of points, vectorized in Rust by polars-h3."""
    points = pl.DataFrame({"lat": lat, "lng": lng}, schema={"lat": pl.Float64, "lng": pl.Float64})
    return points.select(plh3.latlng_to_cell("lat", "lng", geo.H3_RESOLUTION)).to_series().to_numpy()


def _to_index(cells: np.ndarray, ids: np.ndarray) -> np.ndarray:
    pos = np.clip(np.searchsorted(cells, ids), 0, cells.size - 1)
    return np.where(cells[pos] == ids, pos, cells.size)


def _raster(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    half_lat = (geo.SERVICE_RADIUS_KM + RASTER_MARGIN_KM) / KM_PER_DEG
    half_lng = half_lat / np.cos(np.radians(geo.CENTRE[0]))
    lat0, lng0 = geo.CENTRE[0] - half_lat, geo.CENTRE[1] - half_lng
    n_rows, n_cols = int(2 * half_lat / RASTER_STEP_DEG) + 1, int(2 * half_lng / RASTER_STEP_DEG) + 1
    rows, cols = np.meshgrid(np.arange(n_rows + 1), np.arange(n_cols + 1), indexing="ij")
    corners = _h3_ids(lat0 + rows.ravel() * RASTER_STEP_DEG, lng0 + cols.ravel() * RASTER_STEP_DEG)
    corners = corners.reshape(n_rows + 1, n_cols + 1)
    top_left = corners[:-1, :-1]
    pure = (top_left == corners[1:, :-1]) & (top_left == corners[:-1, 1:]) & (top_left == corners[1:, 1:])
    cell = top_left.copy()
    edge_rows, edge_cols = np.nonzero(~pure)  # straddling pixels: read at their centre instead
    cell[edge_rows, edge_cols] = _h3_ids(
        lat0 + (edge_rows + 0.5) * RASTER_STEP_DEG, lng0 + (edge_cols + 0.5) * RASTER_STEP_DEG
    )
    return _to_index(cells, cell).astype(np.int32), ~pure, float(lat0), float(lng0)


@lru_cache(maxsize=1)
def build_city() -> City:
    """The city (built once per process, ~0.5 s; deterministic)."""
    rng = np.random.default_rng(CITY_SEED)
    cells = _service_cells()
    lat, lng = _centres(cells)
    n = cells.size
    arterial = np.isin(cells, np.fromiter(_arterial_cells(), dtype=np.uint64))
    cbd_lat, cbd_lng, _ = geo.DISTRICTS["CBD"]
    cbd = haversine_np(lat, lng, np.full(n, cbd_lat), np.full(n, cbd_lng)) <= geo.CBD_RADIUS_KM
    road_class = np.where(cbd, CBD, np.where(arterial, ARTERIAL, RESIDENTIAL))
    road_class = np.append(road_class, OUTSIDE).astype(np.int8)

    names = tuple(geo.DISTRICTS)
    anchors = np.array([geo.DISTRICTS[d][:2] for d in names])
    to_anchor = haversine_np(lat[:, None], lng[:, None], anchors[None, :, 0], anchors[None, :, 1])
    district = np.append(np.argmin(to_anchor, axis=1), -1).astype(np.int16)

    # a little per-cell texture so two residential cells are not identical
    free_speed = FREE_SPEED_KMH[road_class] * np.append(rng.lognormal(0.0, 0.08, n), 1.0)
    density = np.array([geo.DISTRICTS[d][2] for d in names])[district[:-1]]
    demand = DEMAND_BY_CLASS[road_class[:-1]] * density * rng.lognormal(0.0, 0.3, n)
    raster, raster_edge, lat0, lng0 = _raster(cells)
    depots = np.array(list(geo.DEPOTS.values()))
    return City(
        cells=cells,
        cell_lat=lat,
        cell_lng=lng,
        road_class=road_class,
        district=district,
        district_names=names,
        free_speed_kmh=free_speed,
        congestion_sensitivity=CONGESTION_SENSITIVITY[road_class],
        demand_weight=demand / demand.sum(),
        depot_names=tuple(geo.DEPOTS),
        depot_lat=depots[:, 0],
        depot_lng=depots[:, 1],
        raster=raster,
        raster_edge=raster_edge,
        raster_lat0=lat0,
        raster_lng0=lng0,
    )
