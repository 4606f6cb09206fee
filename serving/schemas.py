"""Request and response models of the ETA service (pydantic; the OpenAPI schema is generated from these).

Field constraints reject bad values before any model code runs, and a rejection names the field
(`legs.0.origin_lat`). Checks that depend on configuration or on the loaded model (batch maximum,
supported interval levels) live in `serving.errors` helpers and name their field the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

from data_contracts.zones import known_zones
from models.grid import DEFAULT_QUANTILES

DEFAULT_LEVELS: tuple[float, ...] = (0.8, 0.9)
MAX_LEVELS = 10
MAX_SERVICE_TIME_S = 4 * 3600.0
MAX_ELAPSED_S = 24 * 3600.0
FIRST_YEAR, LAST_YEAR = 2000, 2099  # keeps arrival arithmetic far from datetime's limits (one century:
# the schema's year pattern is its first two digits)
SLOT_MINUTES = tuple(m for m in range(1, 241) if 1440 % m == 0)  # slots that tile a day


def supported_level(quantiles: Sequence[float]) -> float:
    """The widest central interval the trained quantiles support (0.05..0.95 -> 0.9)."""
    return round(quantiles[-1] - quantiles[0], 6)


# The schema publishes the default quantiles' widest level; a model trained on other quantiles is
# checked against its own (serving.intervals.check_levels)
WIDEST_LEVEL = supported_level(DEFAULT_QUANTILES)


def _known_zone(name: str) -> str:
    if name not in known_zones():
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as 'Africa/Nairobi'")
    return name


def _plausible_year(moment: datetime) -> datetime:
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ValueError(f"year must be between {FIRST_YEAR} and {LAST_YEAR}")
    return moment


def _distinct(values: list[float]) -> list[float]:
    if len(set(values)) != len(values):
        raise ValueError("levels must be distinct")
    return values


def _slot_divides_day(minutes: int) -> int:
    if minutes not in SLOT_MINUTES:
        raise ValueError("slot_minutes must divide a day (e.g. 5, 10, 15, 20, 30, 60)")
    return minutes


def number(low: float, high: float, **schema) -> object:
    """A JSON number in [low, high]: strict, so true, false and "1.5" are refused rather than read as 1, 0, 1.5."""
    return Annotated[float, Field(ge=low, le=high, strict=True, allow_inf_nan=False, **schema)]


Latitude = number(-90.0, 90.0, examples=[-1.2841])
Longitude = number(-180.0, 180.0, examples=[36.8233])
ZONE_SCHEMA = {"type": "string", "enum": sorted(known_zones()), "example": "Africa/Nairobi"}
Zone = Annotated[
    str,
    Field(description="IANA time zone", examples=["Africa/Nairobi"]),
    AfterValidator(_known_zone),
    WithJsonSchema({**ZONE_SCHEMA, "description": "IANA time zone"}),
]
OPTIONAL_ZONE = "IANA time zone; may be left out when the model was trained in one zone (that one is used)"
# null is listed in the enum: OpenAPI 3.0 reads an enum without it as refusing null, nullable or not
OptionalZone = Annotated[
    Zone | None,
    Field(description=OPTIONAL_ZONE),
    WithJsonSchema(
        {**ZONE_SCHEMA, "enum": [*ZONE_SCHEMA["enum"], None], "nullable": True, "description": OPTIONAL_ZONE}
    ),
]
# The year bound is a pattern too, so the published schema says what the validator refuses
Moment = Annotated[
    AwareDatetime,
    Field(description="ISO 8601 with a UTC offset", examples=["2026-02-02T10:00:00+03:00"]),
    AfterValidator(_plausible_year),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": f"^{FIRST_YEAR // 100}[0-9]{{2}}-",
            "description": f"ISO 8601 with a UTC offset, years {FIRST_YEAR}..{LAST_YEAR}",
            "example": "2026-02-02T10:00:00+03:00",
        }
    ),
]
# inclusive bounds: BentoML publishes OpenAPI 3.0, where exclusiveMinimum/Maximum are booleans
Level = number(0.01, WIDEST_LEVEL)
Levels = Annotated[
    list[Level],
    Field(
        min_length=1,
        max_length=MAX_LEVELS,
        json_schema_extra={"uniqueItems": True},
        description="Central interval levels, e.g. 0.8 = 10%..90%, distinct, up to the widest the trained "
        f"quantiles allow ({WIDEST_LEVEL} with the default quantiles)",
    ),
    AfterValidator(_distinct),
]
ServiceTime = number(0.0, MAX_SERVICE_TIME_S)
ShortText = Annotated[str, Field(max_length=64)]
Distance = number(0.0, 2000.0)
Temperature = number(-80.0, 70.0)
Precipitation = number(0.0, 1000.0)
Elapsed = number(0.0, MAX_ELAPSED_S)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Point(Strict):
    lat: Latitude
    lng: Longitude


class LegContext(Strict):
    """Optional context of a leg; the model treats a missing value as unknown."""

    courier_id: ShortText | None = None
    vehicle_type: ShortText | None = Field(None, examples=["motorbike"])
    temperature_c: Temperature | None = None
    precipitation_mm: Precipitation | None = None


class LegPlace(LegContext):
    origin_lat: Latitude
    origin_lng: Longitude
    dest_lat: Latitude
    dest_lng: Longitude
    tz: OptionalZone = None
    road_distance_km: Distance | None = None
    leg_id: Annotated[str, Field(max_length=128)] | None = Field(None, description="Echoed back")


class InProgress(Strict):
    """A leg already under way: how long it has run, and optionally where the courier is now."""

    elapsed_s: Elapsed | None = Field(
        None,
        description="Seconds since departure of a leg still running: the answer is then the time remaining "
        "from departure_time + elapsed_s, given that it has not arrived yet",
    )
    current_position: Point | None = Field(
        None,
        description="Where the courier is now: the remaining time is then that of a leg from there to the "
        "destination, departing at departure_time + elapsed_s (the position already says how far it has come)",
    )


class Leg(LegPlace, InProgress):
    """One delivery leg: where from, where to, when it departs (and, if it is under way, since when)."""

    departure_time: Moment


class OrderLeg(LegPlace, InProgress):
    """The leg to a customer. It departs at `departure_time`; after a planned stop, not before the stop is
    done (the later of the two); with neither, now (the service's clock)."""

    departure_time: Moment | None = None


class PlannedStop(Strict):
    """The courier is planned to reach the stop before this leg at `arrival` and stays `service_time_s`."""

    arrival: Moment
    service_time_s: ServiceTime = 0.0


class Stop(Strict):
    lat: Latitude
    lng: Longitude
    service_time_s: ServiceTime = Field(0.0, description="Time spent at the stop before leaving for the next")
    stop_id: Annotated[str, Field(max_length=128)] | None = None
    road_distance_km: Distance | None = Field(
        None, description="Road distance from the previous stop (or the origin)"
    )


SlotMinutes = Annotated[
    int,
    Field(strict=True, description="Minutes of the slot grid; divides a day"),
    AfterValidator(_slot_divides_day),
    WithJsonSchema(
        {"type": "integer", "enum": list(SLOT_MINUTES), "description": "Minutes of the slot grid"}
    ),
]
Confidence = number(0.01, WIDEST_LEVEL)
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, strict=True)]


# ---- request bodies (top-level fields are the endpoint's parameters; unknown ones are refused) ----------
# The most items per list are the service's configuration (ETA_SERVE_MAX_*): the published schema says them
# (serving.openapi), and a longer list is refused with 413.


class EtaRequest(Strict):
    legs: list[Leg] = Field(min_length=1)
    levels: Levels = Field(default_factory=lambda: list(DEFAULT_LEVELS))


class DeliveryWindowRequest(Strict):
    leg: OrderLeg
    planned_stop: PlannedStop | None = None
    confidence: Confidence = 0.9
    slot_minutes: SlotMinutes = 15


class RouteRequest(Strict):
    origin: Point
    departure_time: Moment
    tz: OptionalZone = None
    stops: list[Stop] = Field(min_length=1)
    context: LegContext = Field(default_factory=LegContext, description="Courier, vehicle and weather")
    levels: Levels = Field(default_factory=lambda: list(DEFAULT_LEVELS))
    seed: Seed = Field(0, description="Monte Carlo seed: same request, same answer")


class ActiveDelivery(Strict):
    """A delivery under way (or not yet departed) and the moment the customer was promised."""

    leg: Leg
    promised_by: Moment = Field(
        description="The end of the window the customer was given (a moment already past is a certain miss)"
    )


class ExceptionRiskRequest(Strict):
    deliveries: list[ActiveDelivery] = Field(min_length=1)
    now: Moment | None = Field(None, description="The dispatcher's clock (default: the service's)")
    confidence: Confidence = Field(0.9, description="Level of the revised windows")


class AdminRequest(Strict):
    """No parameters (the admin endpoints take an empty JSON object)."""


# ---- responses ----------------------------------------------------------------------------------------


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str | None
    source: str = Field(description="registry or bento")
    run_id: str | None = None
    trees: str | None = Field(
        None,
        description="the boosters' library: lightgbm or xgboost",
    )
    online_calibration: dict | None = Field(
        None,
        description="The online calibration state that adjusted the answer (champion_version, revision, "
        "the last day it learned from, legs, active), or null: the champion's own windows",
    )


class Interval(BaseModel):
    level: float
    lower_s: float
    upper_s: float
    earliest_arrival: datetime
    latest_arrival: datetime


class LegEta(BaseModel):
    leg_id: str | None
    tz: str = Field(description="The clock of the leg's arrivals (the model's zone, if the leg gave none)")
    elapsed_s: float | None = Field(
        description="As given: the seconds below then count from departure + elapsed"
    )
    median_s: float
    median_arrival: datetime
    quantiles_s: list[float] = Field(description="Calibrated quantiles, in the order of quantile_levels")
    intervals: list[Interval]


class EtaResponse(BaseModel):
    model: ModelInfo
    quantile_levels: list[float]
    legs: list[LegEta]


class DeliveryWindow(BaseModel):
    window_start: datetime = Field(description="Start of the window in the customer's zone (slot grid)")
    window_end: datetime
    local_start: str = Field(examples=["14:15"])
    local_end: str = Field(examples=["14:45"])
    local_date: str
    tz: str
    confidence: float = Field(description="At least this share of deliveries arrive inside the window")
    slot_minutes: int
    departure_time: datetime
    median_arrival: datetime
    elapsed_s: float | None = Field(None, description="As given, for a leg in progress")
    unrounded_start: datetime
    unrounded_end: datetime
    text: str = Field(examples=["arrives between 14:15 and 14:45"])
    model: ModelInfo


class StopEta(BaseModel):
    index: int
    stop_id: str | None
    leg_median_s: float
    arrival_median: datetime
    arrival_median_s: float = Field(description="Seconds from the route's departure")
    departure_median: datetime
    windows: list[Interval] = Field(description="Arrival windows; seconds count from the route's departure")


class RouteEta(BaseModel):
    model: ModelInfo
    departure_time: datetime
    tz: str = Field(description="The route's zone (the model's, when the request gave none)")
    samples: int
    leg_correlation: float
    stops: list[StopEta]


class DeliveryRisk(BaseModel):
    leg_id: str | None
    tz: str = Field(description="The leg's zone (the model's, when the leg gave none)")
    elapsed_s: float = Field(description="Seconds the leg has run at `now` (0 before departure)")
    late_probability: float = Field(description="Calibrated probability of arriving after promised_by")
    expected_lateness_s: float = Field(description="Expected seconds after promised_by (0 when on time)")
    median_arrival: datetime
    revised_window: Interval = Field(description="Where it arrives now, at the requested confidence")


class ExceptionRisk(BaseModel):
    model: ModelInfo
    now: datetime
    confidence: float
    deliveries: list[DeliveryRisk]


class ServiceStatus(BaseModel):
    model: ModelInfo
    batching: bool
    model_calls: int = Field(description="Model calls made by the micro-batcher since the start")
    requests: int = Field(description="Predictions those calls answered (a /route_eta pass counts as one)")
    max_requests_per_call: int


class ErrorItem(BaseModel):
    type: str
    loc: list[str | int] = Field(description='Path of the offending field, e.g. ["legs", 3, "origin_lat"]')
    msg: str


class ErrorBody(BaseModel):
    """Every 4xx body (serving.errors.error_body)."""

    error: str = Field(description="A readable summary naming each field")
    detail: list[ErrorItem]


class Unavailable(BaseModel):
    """A 503 body: why there is nothing to answer with."""

    error: str


class Ready(BaseModel):
    ready: bool
    detail: str


class SwapResult(BaseModel):
    previous_version: str | None = Field(description="What was served before the check (null: nothing yet)")
    version: str | None
    swapped: bool
    detail: str
