"""Plausibility limits for completed trips: configuration with sensible defaults, never buried constants."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field


class ContractLimits(BaseModel):
    """Limits a completed delivery leg must respect to be trusted as a training label."""

    min_duration_s: float = Field(
        60.0, description="Shorter legs are taps on 'delivered' right after pickup."
    )
    max_duration_s: float = Field(4 * 3600.0, description="Longer legs are forgotten check-outs, not travel.")
    # Straight-line speed = haversine(origin, destination) / duration; road speed is always higher.
    max_speed_kmh: dict[str, float] = Field(
        default_factory=lambda: {
            "motorbike": 80.0,
            "bicycle": 45.0,
            "foot": 15.0,
            "car": 110.0,
            "van": 100.0,
            "default": 120.0,
        }
    )
    null_island_tolerance_deg: float = Field(1e-6, description="|lat| and |lng| below this count as 0.0/0.0.")

    def speed_limit(self, vehicle_type: str | None) -> float:
        if vehicle_type is None:
            return self.max_speed_kmh["default"]
        return self.max_speed_kmh.get(vehicle_type, self.max_speed_kmh["default"])

    @classmethod
    def from_yaml(cls, path: str | Path) -> ContractLimits:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate(data.get("limits", data))
