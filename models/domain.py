"""Where a model knows its legs: the coarse H3 cells its training legs start and end in, and how long they were.

`ModelDomain.from_legs(legs)` records the domain when a model is trained; `domain.reasons(...)` says, per
leg, why the model should not answer it (None when it may). A gradient-boosted tree does not extrapolate:
a leg outside the area or far longer than any it was fitted on gets the answer of the nearest training
legs, with all the confidence of a calibrated interval. Cheap enough for every live request (one h3-py
conversion per endpoint, a binary search and a haversine; see docs/decisions/model-domain.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h3.api.basic_int as h3
import numpy as np
import polars as pl

from data_contracts.geo import haversine_km
from data_contracts.limits import ContractLimits
from features.cells import latlng_to_cell
from features.live import haversine
from features.spec import FeatureSpec

# The spec's region resolution (res 6, edges ~3.7 km; the cells the segment evaluation reports coverage in)
# plus their ring-1 neighbours: a leg a few km past the last trained cell's edge is still answered.
AREA_RESOLUTION = FeatureSpec.model_fields["region_resolution"].default
AREA_RING = 1
# The trees repeat their longest legs' answer beyond them: the 99.9th percentile ignores the odd leg that
# passed the speed check by a whisker; x1.5 still answers all but a handful of training legs (the numbers per
# data set: docs/decisions/model-domain.md).
DISTANCE_QUANTILE = 0.999
DISTANCE_MARGIN = 1.5
# the contract's own tolerance (data_contracts.validate refuses a leg with either end at 0.0/0.0)
NULL_ISLAND_TOLERANCE_DEG = ContractLimits.model_fields["null_island_tolerance_deg"].default
_ENDS = ("origin", "destination")


def _km(km: float) -> str:
    return f"{km:,.1f}" if km < 100 else f"{km:,.0f}"


def _point(lat: float, lng: float) -> str:
    return f"({lat:.2f}, {lng:.2f})"


@dataclass(frozen=True)
class ModelDomain:
    """The training area (H3 cells at `resolution`, ring included), the longest leg answered, and what
    names the area in a refusal (the training endpoints' median point and their time zones)."""

    resolution: int
    cells: tuple[int, ...]  # sorted H3 ids
    max_km: float
    centre: tuple[float, float]
    zones: tuple[str, ...] = ()
    null_island_tolerance_deg: float = NULL_ISLAND_TOLERANCE_DEG
    _sorted: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sorted", np.asarray(sorted(self.cells), dtype=np.int64))

    @classmethod
    def from_legs(
        cls,
        legs: pl.DataFrame,
        resolution: int = AREA_RESOLUTION,
        null_island_tolerance_deg: float = NULL_ISLAND_TOLERANCE_DEG,
    ) -> ModelDomain:
        """The domain of contract legs (origin/dest lat/lng columns, `tz` if present)."""
        if legs.height == 0:
            raise ValueError("cannot record a model's domain from no legs")
        stats = legs.select(
            pl.concat_list(
                latlng_to_cell("origin_lat", "origin_lng", resolution),
                latlng_to_cell("dest_lat", "dest_lng", resolution),
            )
            .explode()
            .unique()
            .implode()
            .alias("cells"),
            haversine_km("origin_lat", "origin_lng", "dest_lat", "dest_lng")
            .quantile(DISTANCE_QUANTILE, "linear")
            .alias("km"),
            pl.concat([pl.col("origin_lat"), pl.col("dest_lat")]).median().alias("lat"),
            pl.concat([pl.col("origin_lng"), pl.col("dest_lng")]).median().alias("lng"),
        ).row(0, named=True)
        seen = stats["cells"]
        ring = {neighbour for cell in seen for neighbour in h3.grid_disk(cell, AREA_RING)}
        zones = tuple(sorted(legs["tz"].drop_nulls().unique().to_list())) if "tz" in legs.columns else ()
        return cls(
            resolution=resolution,
            cells=tuple(sorted(ring)),
            max_km=float(stats["km"]) * DISTANCE_MARGIN,
            centre=(round(stats["lat"], 4), round(stats["lng"], 4)),
            zones=zones,
            null_island_tolerance_deg=null_island_tolerance_deg,
        )

    def describe(self) -> str:
        """The area in words: '38 H3 res-6 cells around (-1.27, 36.82), Africa/Nairobi'."""
        where = f"{len(self.cells)} H3 res-{self.resolution} cells around {_point(*self.centre)}"
        return ", ".join([where, *self.zones[:3]])

    def _inside(self, lat: np.ndarray, lng: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Whether each valid point's cell is one of the domain's: h3-py per point (a request has few), then
        a binary search in the sorted cells."""
        res = self.resolution
        points = zip(lat.ravel().tolist(), lng.ravel().tolist(), valid.ravel().tolist(), strict=True)
        cells = np.array([h3.latlng_to_cell(a, b, res) if ok else 0 for a, b, ok in points], dtype=np.int64)
        at = np.minimum(np.searchsorted(self._sorted, cells), len(self._sorted) - 1)
        return (self._sorted[at] == cells).reshape(lat.shape)

    def reasons(self, origin_lat, origin_lng, dest_lat, dest_lng) -> list[str | None]:
        """Per leg, why it lies outside what the model was trained on, or None when it lies inside."""
        # rows: origin, destination (one numpy call per check for both ends: a live call is a few legs)
        lat = np.array([origin_lat, dest_lat], dtype=np.float64).reshape(2, -1)
        lng = np.array([origin_lng, dest_lng], dtype=np.float64).reshape(2, -1)
        valid = (np.abs(lat) <= 90) & (np.abs(lng) <= 180)  # False for NaN too
        tol = self.null_island_tolerance_deg
        island = (np.abs(lat) < tol) & (np.abs(lng) < tol)
        outside = valid & ~self._inside(lat, lng, valid)
        km = haversine(lat[0], lng[0], lat[1], lng[1])
        refused = (~valid | island | outside).any(axis=0) | (km > self.max_km)
        out: list[str | None] = [None] * len(km)
        for i in np.flatnonzero(refused).tolist():
            out[i] = self._reason(
                lat[:, i], lng[:, i], valid[:, i], island[:, i], outside[:, i], float(km[i])
            )
        return out

    def _reason(self, lat, lng, valid, island, outside, km: float) -> str:
        """One refused leg's reason; its arguments are (origin, destination) pairs."""
        broken = [
            f"{end} ({lat[k]}, {lng[k]}) is not a valid coordinate"
            for k, end in enumerate(_ENDS)
            if not valid[k]
        ] + [f"{end} is null island (0, 0), a missing GPS fix" for k, end in enumerate(_ENDS) if island[k]]
        if broken:  # the other checks mean nothing for such a leg
            return "; ".join(broken)
        problems = []
        away = [k for k in range(2) if outside[k]]
        if away:
            points = " and ".join(f"{_ENDS[k]} {_point(lat[k], lng[k])}" for k in away)
            verb = "is" if len(away) == 1 else "are"
            problems.append(f"{points} {verb} outside the area this model was trained on ({self.describe()})")
        if km > self.max_km:
            problems.append(
                f"the leg is {_km(km)} km long; this model knows legs up to {_km(self.max_km)} km"
            )
        return "; ".join(problems)

    def to_dict(self) -> dict:
        return {
            "resolution": self.resolution,
            "cells": [h3.int_to_str(c) for c in self.cells],
            "max_km": self.max_km,
            "centre": list(self.centre),
            "zones": list(self.zones),
            "null_island_tolerance_deg": self.null_island_tolerance_deg,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelDomain:
        return cls(
            resolution=int(data["resolution"]),
            cells=tuple(sorted(h3.str_to_int(c) for c in data["cells"])),
            max_km=float(data["max_km"]),
            centre=(float(data["centre"][0]), float(data["centre"][1])),
            zones=tuple(data.get("zones", ())),
            null_island_tolerance_deg=float(data.get("null_island_tolerance_deg", NULL_ISLAND_TOLERANCE_DEG)),
        )
