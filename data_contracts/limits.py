"""Plausibility limits for completed trips: configuration with sensible defaults, never buried constants."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data_contracts.config_files import describe_validation_error, read_yaml_config

# Straight-line speed = haversine(origin, destination) / duration; road speed is always higher.
DEFAULT_MAX_SPEED_KMH: dict[str, float] = {
    "motorbike": 80.0,
    "bicycle": 45.0,
    "foot": 15.0,
    "car": 110.0,
    "van": 100.0,
    "default": 120.0,
}


class ContractLimits(BaseModel):
    """Limits a completed delivery leg must respect to be trusted as a training label."""

    # a misspelt limit must be an error, not a silent fallback to its default
    model_config = ConfigDict(extra="forbid")

    min_duration_s: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description="Shorter legs are taps on 'delivered' right after pickup.",
    )
    max_duration_s: float = Field(
        4 * 3600.0, gt=0, allow_inf_nan=False, description="Longer legs are forgotten check-outs, not travel."
    )
    max_speed_kmh: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MAX_SPEED_KMH),
        description="km/h per vehicle type, `default` for any other; entries given replace those defaults only.",
    )
    null_island_tolerance_deg: float = Field(
        1e-6, ge=0, allow_inf_nan=False, description="|lat| and |lng| below this count as 0.0/0.0."
    )

    @field_validator("max_speed_kmh")
    @classmethod
    def _over_the_defaults(cls, speeds: dict[str, float]) -> dict[str, float]:
        """Merge over the defaults, so `default` (for unknown and missing vehicle types) is always there."""
        unknown = sorted(set(speeds) - set(DEFAULT_MAX_SPEED_KMH))
        if unknown:
            raise ValueError(f"unknown vehicle type(s) {unknown}; known: {', '.join(DEFAULT_MAX_SPEED_KMH)}")
        bad = {vehicle: kmh for vehicle, kmh in speeds.items() if not 0 < kmh < float("inf")}
        if bad:
            raise ValueError(f"speeds must be positive km/h, got {bad}")
        return {**DEFAULT_MAX_SPEED_KMH, **speeds}

    @model_validator(mode="after")
    def _min_below_max(self) -> ContractLimits:
        if self.min_duration_s >= self.max_duration_s:
            low, high = self.min_duration_s, self.max_duration_s
            raise ValueError(f"min_duration_s ({low:g}) must be below max_duration_s ({high:g})")
        return self

    def speed_limit(self, vehicle_type: str | None) -> float:
        if vehicle_type is None:
            return self.max_speed_kmh["default"]
        return self.max_speed_kmh.get(vehicle_type, self.max_speed_kmh["default"])

    @classmethod
    def from_yaml(cls, path: str | Path) -> ContractLimits:
        """Limits from YAML (top-level keys or under `limits:`); ValueError names the file and each field."""
        data = read_yaml_config(Path(path), "limits")
        if "limits" in data:
            data = data["limits"] or {}
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ValueError(f"limits {Path(path).name}: {describe_validation_error(err)}") from None
