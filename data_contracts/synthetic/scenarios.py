"""Dated drift scenarios for the simulated city, each with known, machine-readable ground truth.

SCENARIOS
---------
Day numbers count from the first generated day (day 0). The onset day D defaults to `min(30, days // 2)` and
can be set. "Travel" is the driving part of a leg; the service time at the door never changes.

`stationary`
    No drift: the same city, weather climate, fleet and demand on every day.
`regional_slowdown`
    From day D to the end of the run, travel *speed* in every H3 cell of the district `Westlands` is x0.6
    (travel time through those cells x1/0.6 = x1.667). A leg's travel time is integrated over points along
    its path, so a leg entirely inside the district drives 1/0.6 times longer; a leg that only crosses it
    proportionally less; a leg that never touches it is unchanged. The ground truth lists the cells.
`rain_week`
    Days D .. D+6: a storm. Precipitation at every departure is at least 8 mm/h (`precipitation_mm` shows it),
    so the rain factor of the weather model is at its floor: travel speed x0.75 everywhere (travel time x4/3)
    compared with a dry day. Other days keep their ordinary weather.
`demand_surge`
    From day D: daily trip volume x2, half of each day's trips drawn from the rush-hour profile (07-09 and
    17-20 local) instead of the ordinary one, and traffic slightly heavier: travel speed x0.9 everywhere.

Same seed, different scenario: legs, couriers, weather and noise are drawn identically, so comparing a
scenario with `stationary` leg by leg isolates the effect (except `demand_surge`, whose volume differs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import h3
import numpy as np

from data_contracts.names import SCENARIO_NAMES
from data_contracts.synthetic import geography as geo
from data_contracts.synthetic.city import build_city
from data_contracts.synthetic.weather import HEAVY_RAIN_MM_H, RAIN_SLOWDOWN_AT_HEAVY

DEFAULT_ONSET_DAY = 30
DEFAULT_RUN_DAYS = 60  # what a scenario named by a bare string assumes when no run length is known
SLOWED_DISTRICT = "Westlands"
DISTRICT_SPEED_FACTOR = 0.6
RAIN_WEEK_DAYS = 7
SURGE_VOLUME_FACTOR = 2.0
SURGE_RUSH_SHARE = 0.5
SURGE_SPEED_FACTOR = 0.9


@dataclass(frozen=True)
class Scenario:
    """What changes, and from which day (for `duration_days` days, or to the end of the run when None)."""

    name: str
    onset_day: int = 0
    duration_days: int | None = None
    district: str | None = None
    district_speed_factor: float = 1.0
    city_speed_factor: float = 1.0
    heavy_rain: bool = False
    volume_factor: float = 1.0
    rush_demand_share: float = 0.0

    @property
    def has_effect(self) -> bool:
        return self.name != "stationary"

    def active(self, day_index: np.ndarray | int) -> np.ndarray:
        """Whether the drift is on, per day index."""
        day = np.asarray(day_index)
        on = day >= self.onset_day
        if self.duration_days is not None:
            on &= day < self.onset_day + self.duration_days
        return on & self.has_effect


def default_onset(days: int) -> int:
    return min(DEFAULT_ONSET_DAY, days // 2)


def make_scenario(name: str, days: int = DEFAULT_RUN_DAYS, onset_day: int | None = None) -> Scenario:
    """The named scenario for a run of `days` days."""
    onset = default_onset(days) if onset_day is None else onset_day
    if onset < 0:
        raise ValueError(f"onset_day must be >= 0, got {onset}")
    if name == "stationary":
        return Scenario(name)
    if name == "regional_slowdown":
        return Scenario(name, onset, district=SLOWED_DISTRICT, district_speed_factor=DISTRICT_SPEED_FACTOR)
    if name == "rain_week":
        return Scenario(name, onset, duration_days=RAIN_WEEK_DAYS, heavy_rain=True)
    if name == "demand_surge":
        return Scenario(
            name,
            onset,
            volume_factor=SURGE_VOLUME_FACTOR,
            rush_demand_share=SURGE_RUSH_SHARE,
            city_speed_factor=SURGE_SPEED_FACTOR,
        )
    raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIO_NAMES)}")


def resolve_scenario(scenario: Scenario | str) -> Scenario:
    return scenario if isinstance(scenario, Scenario) else make_scenario(scenario)


def scenario_ground_truth(
    name: str, start: date, days: int, onset_day: int | None = None
) -> dict[str, object]:
    """What the scenario did, as plain JSON-able values: days, dates, factors and affected H3 cells."""
    scenario = make_scenario(name, days, onset_day)
    active_days = [int(d) for d in np.flatnonzero(scenario.active(np.arange(days)))]
    city = build_city()
    if scenario.district is not None:
        cells = city.district_cells(scenario.district)
    elif scenario.has_effect:
        cells = [h3.int_to_str(int(c)) for c in city.cells]
    else:
        cells = []
    rain_factor = 1.0 - RAIN_SLOWDOWN_AT_HEAVY if scenario.heavy_rain else 1.0
    return {
        "scenario": name,
        "description": _DESCRIPTIONS[name],
        "city": geo.CITY_NAME,
        "tz": geo.TZ,
        "start": start.isoformat(),
        "days": days,
        "onset_day": scenario.onset_day if scenario.has_effect else None,
        "active_days": active_days,
        "active_dates": [(start + timedelta(days=d)).isoformat() for d in active_days],
        "effects": {
            "district": scenario.district,
            "district_travel_speed_factor": scenario.district_speed_factor,
            "citywide_travel_speed_factor": scenario.city_speed_factor * rain_factor,
            "min_precipitation_mm_h": HEAVY_RAIN_MM_H if scenario.heavy_rain else None,
            "volume_factor": scenario.volume_factor,
            "rush_demand_share": scenario.rush_demand_share,
            "service_time_factor": 1.0,
        },
        "h3_resolution": geo.H3_RESOLUTION,
        "citywide": bool(scenario.has_effect and scenario.district is None),
        "affected_h3_cells": cells,
    }


_DESCRIPTIONS = {
    "stationary": "No drift.",
    "regional_slowdown": (
        f"Travel speed x{DISTRICT_SPEED_FACTOR} in every H3 cell of {SLOWED_DISTRICT} from the onset day to the "
        "end of the run; legs are slowed in proportion to the part of their path inside the district."
    ),
    "rain_week": (
        f"{RAIN_WEEK_DAYS} days of heavy rain from the onset day: precipitation >= {HEAVY_RAIN_MM_H} mm/h at "
        f"every departure, travel speed x{1 - RAIN_SLOWDOWN_AT_HEAVY} everywhere compared with a dry day."
    ),
    "demand_surge": (
        f"From the onset day: trips per day x{SURGE_VOLUME_FACTOR}, {SURGE_RUSH_SHARE:.0%} of them drawn from the "
        f"rush-hour profile, travel speed x{SURGE_SPEED_FACTOR} everywhere (heavier traffic)."
    ),
}
