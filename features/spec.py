"""The versioned feature specification: everything that decides a feature value, saved beside every model.

A spec is plain configuration (resolutions, hour bands, look-back, shrinkage, holidays); the feature names
and dtypes follow from it. `to_json` writes both, and `from_json` refuses a file whose stored feature list
differs from what this code would build, so a model can never be fed columns it was not trained on.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.cells import H3_MAX_RES
from features.holidays import default_holidays


class HourBand(BaseModel):
    """A named part of the local day; it runs from `start_hour` until the next band starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    start_hour: int = Field(ge=0, le=23)


def _default_bands() -> tuple[HourBand, ...]:
    return (
        HourBand(name="night", start_hour=22),
        HourBand(name="morning_rush", start_hour=6),
        HourBand(name="midday", start_hour=10),
        HourBand(name="evening_rush", start_hour=16),
        HourBand(name="evening", start_hour=20),
    )


class FeatureSpec(BaseModel):
    """Configuration of the feature build; `feature_dtypes()` is the model-input contract it implies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = "1.0"
    cell_resolutions: tuple[int, ...] = Field(
        (9, 8, 7), description="Origin/destination cells emitted as features."
    )
    region_resolution: int = Field(
        6, description="Coarse region kept as a context column (segment evaluation)."
    )
    grid_distance_resolution: int = 8
    aggregate_cell_resolution: int = Field(
        8, description="Endpoint cell of the per-origin/per-destination speed."
    )
    aggregate_parent_resolution: int = Field(7, description="Parent the endpoint speed is shrunk towards.")
    od_resolution: int = Field(7, description="Cells of the (origin, destination) pair speed.")
    od_parent_resolution: int = Field(6, description="Parent pair the pair speed is shrunk towards.")
    hour_bands: tuple[HourBand, ...] = Field(default_factory=_default_bands)
    lookback_days: int = Field(28, gt=0, description="Aggregates use trips that ended in the W days before.")
    shrinkage_trips: float = Field(
        20.0, gt=0, description="Pseudo-count k pulling a level towards its parent."
    )
    aggregate_min_km: float = Field(
        0.05,
        ge=0,
        description="Shorter legs (round trips) have no straight-line speed: left out of aggregates.",
    )
    min_speed_kmh: float = Field(1.0, gt=0, description="Floor before the log of a historical speed.")
    rain_threshold_mm: float = Field(0.1, ge=0, description="Precipitation (mm/h) above which it rains.")
    weekend_days: tuple[int, ...] = Field((6, 7), description="ISO weekdays of the weekend (Mon = 1).")
    vehicle_types: tuple[str, ...] = Field(("motorbike", "bicycle", "car", "van", "foot"))
    holidays: dict[str, tuple[date, ...]] = Field(
        default_factory=default_holidays, description="IANA zone -> local dates that are public holidays."
    )
    holiday_weekday: int | None = Field(
        7, ge=1, le=7, description="ISO weekday a public holiday is read as (None: its calendar weekday)."
    )

    @field_validator("cell_resolutions")
    @classmethod
    def _distinct_resolutions(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("cell_resolutions must be distinct and non-empty")
        return tuple(sorted(value, reverse=True))

    @field_validator("hour_bands")
    @classmethod
    def _bands_cover_the_day(cls, value: tuple[HourBand, ...]) -> tuple[HourBand, ...]:
        starts = [band.start_hour for band in value]
        if not value or len(set(starts)) != len(starts) or len({b.name for b in value}) != len(value):
            raise ValueError("hour bands need distinct names and distinct start hours")
        return value

    @model_validator(mode="after")
    def _resolutions_nest(self) -> FeatureSpec:
        for res in self.resolutions_needed():
            if not 0 <= res <= H3_MAX_RES:
                raise ValueError(f"H3 resolution {res} is outside 0..{H3_MAX_RES}")
        if not self.aggregate_parent_resolution < self.aggregate_cell_resolution:
            raise ValueError("aggregate_parent_resolution must be coarser than aggregate_cell_resolution")
        if not self.od_parent_resolution < self.od_resolution:
            raise ValueError("od_parent_resolution must be coarser than od_resolution")
        return self

    @property
    def finest_resolution(self) -> int:
        """The one resolution converted from lat/lng; every other cell is its parent."""
        return max(self.resolutions_needed())

    def resolutions_needed(self) -> tuple[int, ...]:
        """Every H3 resolution the build uses, finest first."""
        used = {
            *self.cell_resolutions,
            self.region_resolution,
            self.grid_distance_resolution,
            self.aggregate_cell_resolution,
            self.aggregate_parent_resolution,
            self.od_resolution,
            self.od_parent_resolution,
        }
        return tuple(sorted(used, reverse=True))

    def band_of_hour(self) -> list[int]:
        """Band index for each local hour 0..23 (hours before the earliest start belong to the latest band)."""
        by_start = sorted(range(len(self.hour_bands)), key=lambda i: self.hour_bands[i].start_hour)
        lookup = []
        for hour in range(24):
            started = [i for i in by_start if self.hour_bands[i].start_hour <= hour]
            lookup.append(started[-1] if started else by_start[-1])
        return lookup

    def feature_dtypes(self) -> dict[str, pl.DataType]:
        """Model inputs, in the order of the feature matrix, with their dtypes."""
        cells = {
            f"{end}_cell_r{res}": pl.Int64() for end in ("origin", "dest") for res in self.cell_resolutions
        }
        return {
            **cells,
            "haversine_km": pl.Float64(),
            f"grid_distance_r{self.grid_distance_resolution}": pl.Int32(),
            "bearing_deg": pl.Float64(),
            "bearing_sin": pl.Float64(),
            "bearing_cos": pl.Float64(),
            "local_hour": pl.Int8(),
            "minute_of_day": pl.Int16(),
            "hour_sin": pl.Float64(),
            "hour_cos": pl.Float64(),
            "weekday": pl.Int8(),
            "weekday_sin": pl.Float64(),
            "weekday_cos": pl.Float64(),
            "is_weekend": pl.Int8(),
            "is_holiday": pl.Int8(),
            "hour_band": pl.Int8(),
            "road_distance_km": pl.Float64(),
            "vehicle_type_code": pl.Int8(),
            "temperature_c": pl.Float64(),
            "precipitation_mm": pl.Float64(),
            "is_raining": pl.Int8(),
            "origin_log_speed": pl.Float64(),
            "origin_trips": pl.Int64(),
            "dest_log_speed": pl.Float64(),
            "dest_trips": pl.Int64(),
            "od_log_speed": pl.Float64(),
            "od_trips": pl.Int64(),
            "prior_duration_s": pl.Float64(),
            "courier_log_speed_factor": pl.Float64(),
            "courier_trips": pl.Int64(),
        }

    def context_dtypes(self) -> dict[str, pl.DataType]:
        """Columns returned beside the features for joining and segment evaluation; not model inputs."""
        return {
            "trip_id": pl.String(),
            f"origin_region_r{self.region_resolution}": pl.Int64(),
            f"dest_region_r{self.region_resolution}": pl.Int64(),
        }

    @property
    def feature_names(self) -> list[str]:
        return list(self.feature_dtypes())

    def _stored_features(self) -> list[dict[str, str]]:
        return [{"name": name, "dtype": str(dtype)} for name, dtype in self.feature_dtypes().items()]

    def to_json(self) -> str:
        """The configuration plus the implied feature names and dtypes (for humans and for `from_json`)."""
        body: dict[str, Any] = json.loads(self.model_dump_json())
        body["features"] = self._stored_features()
        return json.dumps(body, indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """Load a spec; raises ValueError when its stored features differ from what this code builds."""
        body = json.loads(text)
        stored = body.pop("features", None)
        body.setdefault("holiday_weekday", None)  # a spec saved before the setting read holidays as they fell
        spec = cls.model_validate(body)
        expected = spec._stored_features()
        if stored is not None and stored != expected:
            raise ValueError(
                f"spec {spec.version}: stored features {stored} differ from this code's {expected}"
            )
        return spec
