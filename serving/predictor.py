"""What the endpoints do, without BentoML: checks that need the configuration or the model, the model call
(through the micro-batcher while serving), and the answers. `serving.service` only wires HTTP to this."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from pydantic_core import to_json

from models.bundle import interval_from_quantiles, quantile_at
from serving import route
from serving.batching import MicroBatcher
from serving.config import ServingConfig
from serving.errors import InvalidRequest, Loc, check_count
from serving.frames import epoch_us, model_input
from serving.intervals import SECONDS_DECIMALS, arrival, check_levels, legs_json
from serving.model_source import LoadedModel, ModelHolder, SourceUnavailable
from serving.schemas import (
    MAX_ELAPSED_S,
    ActiveDelivery,
    DeliveryRisk,
    DeliveryWindow,
    ExceptionRisk,
    InProgress,
    Interval,
    Leg,
    LegContext,
    LegPlace,
    ModelInfo,
    OrderLeg,
    PlannedStop,
    Point,
    RouteEta,
    ServiceStatus,
    Stop,
    StopEta,
    SwapResult,
)
from serving.windows import slot_window

logger = logging.getLogger(__name__)
ROUTE_MAX_PASSES = 3  # feature start times re-planned until they move less than ROUTE_SETTLED_S
ROUTE_SETTLED_S = 60.0
FIRST_LOAD_POLL_S = 1.0  # how often the first model is looked for


Departure = tuple[LegPlace, datetime]  # a leg and when it departs: one row of a model call


def _predict(snapshot: LoadedModel, rows: Sequence[Departure]) -> np.ndarray:
    """Quantiles for legs and their departures (on the prediction thread: the frame is built here too)."""
    legs, departures = zip(*rows, strict=True)
    return snapshot.model.predict_quantiles(model_input(legs, departures), snapshot.online)


class EtaPredictor:
    """Answers for /eta, /delivery_window and /route_eta from the holder's current model."""

    def __init__(self, holder: ModelHolder, config: ServingConfig) -> None:
        self.holder, self.config = holder, config
        # one prediction thread: boosters run single-threaded, the event loop parses and serialises meanwhile
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eta-predict")
        self.batcher: MicroBatcher[LoadedModel, Departure] | None = None
        self._poller: asyncio.Task | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the micro-batcher and the poller on the running event loop."""
        if self.config.batching and self.batcher is None:
            self.batcher = MicroBatcher(_predict, self.executor, self.config.max_batch_legs)
            self.batcher.start()
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="eta-model-poller")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self.batcher is not None:
            await self.batcher.stop()
            self.batcher = None
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.holder.stop()

    async def _poll(self) -> None:
        """Until a model is served, check every second; then every poll_seconds (0: only on /admin/reload)."""
        while True:
            if self.holder.loaded and self.config.poll_seconds <= 0:
                return
            try:
                await asyncio.to_thread(self.holder.refresh)
                await asyncio.to_thread(self.holder.refresh_online)
            except SourceUnavailable:
                pass  # remembered by the holder (its reason answers /readyz) and logged once
            except Exception:
                logger.exception("event=check_failed")
            await asyncio.sleep(self.config.poll_seconds if self.holder.loaded else FIRST_LOAD_POLL_S)

    def wait_for_model(self, timeout_s: float = 120.0) -> None:
        """Block until a model is served (scripts and tests that call the service in process)."""
        import time

        deadline = time.monotonic() + timeout_s
        while not self.holder.loaded:
            try:
                self.holder.refresh()
            except SourceUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(FIRST_LOAD_POLL_S)

    async def reload(self) -> SwapResult:
        """Have the source check now and swap if the alias moved (the admin endpoint)."""
        await asyncio.to_thread(self.holder.source.check_now)
        result = await asyncio.to_thread(self.holder.refresh)
        await asyncio.to_thread(self.holder.refresh_online)
        return result

    def status(self) -> ServiceStatus:
        batcher = self.batcher
        return ServiceStatus(
            model=self.holder.current.info,
            batching=batcher is not None,
            model_calls=batcher.calls if batcher else 0,
            requests=batcher.requests if batcher else 0,
            max_requests_per_call=batcher.largest if batcher else 0,
        )

    def served(self) -> ModelInfo | None:
        """The model answering now (None: none yet)."""
        return self.holder.current.info if self.holder.loaded else None

    def readiness(self) -> tuple[bool, str]:
        """Whether a model is served, from the last check (no prediction here: each model was probed when
        it was loaded). A failing registry check does not make a serving replica unready (an outage of the
        registry would otherwise take every replica out of the load balancer); the detail says it."""
        if not self.holder.loaded:
            return False, self.holder.unavailable_reason()
        detail = f"serving {self.holder.current.info.name} v{self.holder.current.version}"
        if self.holder.last_error:
            detail += (
                f"; the last check failed, so it may not be the current version: {self.holder.last_error}"
            )
        return True, detail

    async def quantiles(
        self, snapshot: LoadedModel, legs: Sequence[LegPlace], departures: Sequence[datetime]
    ) -> np.ndarray:
        """Calibrated quantiles in seconds, one row per leg, from `snapshot`'s model."""
        rows = list(zip(legs, departures, strict=True))
        if self.batcher is not None:
            return await self.batcher.submit(snapshot, rows)
        return await asyncio.get_running_loop().run_in_executor(self.executor, _predict, snapshot, rows)

    # ---- endpoints ------------------------------------------------------------------------------------

    async def remaining(
        self,
        snapshot: LoadedModel,
        legs: Sequence[LegPlace | InProgress],
        departures: Sequence[datetime],
        locs: Sequence[Loc],
    ) -> tuple[np.ndarray, np.ndarray, list[Progress]]:
        """Quantiles of what is left of each leg (the whole leg when it has not started), the moments they
        count from (epoch seconds), and each leg's progress; a leg outside the model's domain is refused
        (422), named by its entry in `locs`."""
        progress = [leg_progress(leg, departure) for leg, departure in zip(legs, departures, strict=True)]
        check_domain(snapshot.model, [p.leg for p in progress], locs)
        q = await self.quantiles(snapshot, [p.leg for p in progress], [p.departure for p in progress])
        running = np.array([p.conditioned_s for p in progress], dtype=float)
        if running.any():
            q = q.copy()
            rows = np.flatnonzero(running > 0)
            q[rows] = enroute_of(snapshot.model).remaining(q[rows], running[rows])
        starts = np.array([epoch_us(p.counted_from) for p in progress], dtype=float) / 1e6
        return q, starts, progress

    async def eta(self, legs: Sequence[Leg], levels: Sequence[float]) -> bytes:
        """The /eta answer as JSON in the shape of `EtaResponse` (see `serving.intervals`)."""
        check_count(("legs",), len(legs), self.config.max_legs, "leg")
        snapshot = self.holder.current
        check_levels(levels, snapshot.model.quantiles)
        locs = [("legs", i) for i in range(len(legs))]
        legs = with_zones(snapshot.model, legs, locs)
        departures = [leg.departure_time for leg in legs]
        q, starts, _ = await self.remaining(snapshot, legs, departures, locs)
        answers = legs_json(
            q,
            snapshot.model.quantiles,
            levels,
            starts,
            [leg.tz for leg in legs],
            [leg.leg_id for leg in legs],
            [leg.elapsed_s for leg in legs],
        )
        head = to_json({"model": snapshot.payload, "quantile_levels": snapshot.model.quantiles})
        return head[:-1] + b',"legs":' + answers + b"}"

    async def delivery_window(
        self, leg: OrderLeg, planned_stop: PlannedStop | None, confidence: float, slot_minutes: int
    ) -> DeliveryWindow:
        departure = order_departure(leg, planned_stop, datetime.now(UTC))
        snapshot = self.holder.current
        quantiles = snapshot.model.quantiles
        check_levels([confidence], quantiles, loc=("confidence",), indexed=False)
        (leg,) = with_zones(snapshot.model, [leg], [("leg",)])
        q, _, (progress,) = await self.remaining(snapshot, [leg], [departure], [("leg",)])
        lower_s, upper_s = (float(b[0]) for b in interval_from_quantiles(q, quantiles, confidence))
        median_s = float(quantile_at(q, quantiles, 0.5)[0])
        zone = ZoneInfo(leg.tz)
        start = progress.counted_from
        lower, upper = arrival(start, lower_s, zone), arrival(start, upper_s, zone)
        window = slot_window(lower, upper, slot_minutes, zone)
        return DeliveryWindow(
            window_start=window.start,
            window_end=window.end,
            local_start=window.clock(window.start),
            local_end=window.clock(window.end),
            local_date=window.start.date().isoformat(),
            tz=leg.tz,
            confidence=confidence,
            slot_minutes=slot_minutes,
            departure_time=departure.astimezone(zone),
            median_arrival=arrival(start, median_s, zone),
            elapsed_s=leg.elapsed_s,
            unrounded_start=lower,
            unrounded_end=upper,
            text=window.text(),
            model=snapshot.info,
        )

    async def exception_risk(
        self, deliveries: Sequence[ActiveDelivery], now: datetime | None, confidence: float
    ) -> ExceptionRisk:
        """Per active delivery: the calibrated probability of missing its promise, the expected lateness and
        the window where it arrives now."""
        from models.enroute import expected_lateness

        check_count(("deliveries",), len(deliveries), self.config.max_legs, "delivery")
        snapshot = self.holder.current
        quantiles = snapshot.model.quantiles
        check_levels([confidence], quantiles, loc=("confidence",), indexed=False)
        now = now or datetime.now(UTC)
        locs = [("deliveries", i, "leg") for i in range(len(deliveries))]
        given = with_zones(snapshot.model, [delivery.leg for delivery in deliveries], locs)
        legs = []
        for i, leg in enumerate(given):
            running = max((now - leg.departure_time).total_seconds(), 0.0)
            if running > MAX_ELAPSED_S:
                raise InvalidRequest(
                    ("deliveries", i, "leg", "departure_time"),
                    f"the leg departed {running / 3600:.0f} h before now, more than {MAX_ELAPSED_S / 3600:.0f} h: "
                    "is departure_time (or now) right?",
                    status=422,
                    kind="implausible",
                )
            legs.append(leg.model_copy(update={"elapsed_s": running if running > 0 else None}))
        departures = [leg.departure_time for leg in legs]
        progress = [leg_progress(leg, d) for leg, d in zip(legs, departures, strict=True)]
        check_domain(snapshot.model, [p.leg for p in progress], locs)
        q = await self.quantiles(snapshot, [p.leg for p in progress], [p.departure for p in progress])
        conditioned = np.array([p.conditioned_s for p in progress])
        promised = np.array(
            [(d.promised_by - p.departure).total_seconds() for d, p in zip(deliveries, progress, strict=True)]
        )
        calibration = enroute_of(snapshot.model)
        risk = calibration.risk(q, conditioned, promised)
        lateness = expected_lateness(q, quantiles, conditioned, promised)
        remaining = calibration.remaining(q, conditioned)
        lower, upper = interval_from_quantiles(remaining, quantiles, confidence)
        median = quantile_at(remaining, quantiles, 0.5)
        answers = []
        for i, (delivery, p) in enumerate(zip(deliveries, progress, strict=True)):
            zone = ZoneInfo(legs[i].tz)
            start = p.counted_from
            answers.append(
                DeliveryRisk(
                    leg_id=delivery.leg.leg_id,
                    tz=legs[i].tz,
                    elapsed_s=round(float(legs[i].elapsed_s or 0.0), SECONDS_DECIMALS),
                    late_probability=round(float(risk[i]), 4),
                    expected_lateness_s=round(float(lateness[i]), SECONDS_DECIMALS),
                    median_arrival=arrival(start, median[i], zone),
                    revised_window=Interval(
                        level=confidence,
                        lower_s=round(float(lower[i]), SECONDS_DECIMALS),
                        upper_s=round(float(upper[i]), SECONDS_DECIMALS),
                        earliest_arrival=arrival(start, lower[i], zone),
                        latest_arrival=arrival(start, upper[i], zone),
                    ),
                )
            )
        return ExceptionRisk(model=snapshot.info, now=now, confidence=confidence, deliveries=answers)

    async def route_eta(
        self,
        origin: Point,
        departure_time: datetime,
        tz: str | None,
        stops: Sequence[Stop],
        context: LegContext,
        levels: Sequence[float],
        seed: int,
    ) -> RouteEta:
        check_count(("stops",), len(stops), self.config.max_stops, "stop")
        snapshot = self.holder.current
        quantiles = snapshot.model.quantiles
        check_levels(levels, quantiles)
        tz = tz or model_zone(snapshot.model, [("tz",)])
        legs = route_legs(origin, stops, tz, context)
        check_domain(snapshot.model, legs, [("stops", i) for i in range(len(legs))])
        service_s = np.array([stop.service_time_s for stop in stops])
        starts = [departure_time] * len(legs)
        for _ in range(ROUTE_MAX_PASSES):
            q = await self.quantiles(snapshot, legs, starts)
            planned = route.planned_departures(departure_time, quantile_at(q, quantiles, 0.5), service_s)
            moved = max(abs((a - b).total_seconds()) for a, b in zip(planned, starts, strict=True))
            starts = planned
            if moved < ROUTE_SETTLED_S:
                break
        else:
            q = await self.quantiles(snapshot, legs, starts)
        rng = np.random.default_rng(seed)
        z = route.latent_scores(self.config.route_samples, len(legs), self.config.route_leg_correlation, rng)
        arrivals = route.cumulative_arrivals(route.sample_durations(q, quantiles, z), service_s)
        return RouteEta(
            model=snapshot.info,
            departure_time=departure_time,
            tz=tz,
            samples=self.config.route_samples,
            leg_correlation=self.config.route_leg_correlation,
            stops=stop_etas(departure_time, ZoneInfo(tz), stops, q, quantiles, arrivals, levels),
        )


@dataclass(frozen=True)
class Progress:
    """How far a leg has come: the leg the model predicts (from the courier's position, if known), when that
    leg departs, the seconds it is conditioned on having run, and the moment the answer counts from."""

    leg: LegPlace
    departure: datetime
    conditioned_s: float
    counted_from: datetime


def leg_progress(leg: LegPlace | InProgress, departure: datetime) -> Progress:
    """A leg's progress: with a current position, a fresh leg from there departing now (the position says
    how far it has come); with only elapsed_s, the whole leg given that it has run that long."""
    elapsed = getattr(leg, "elapsed_s", None) or 0.0
    position = getattr(leg, "current_position", None)
    now = departure + timedelta(seconds=elapsed)
    if position is None:
        return Progress(leg, departure, elapsed, now)
    moved = leg.model_copy(update={"origin_lat": position.lat, "origin_lng": position.lng})
    return Progress(moved, now, 0.0, now)


def check_domain(model, legs: Sequence[LegPlace], locs: Sequence[Loc]) -> None:
    """422 naming every leg outside the area and distances the model was trained on (models.domain); a
    model saved without its domain answers everything, as before."""
    domain = getattr(model, "domain", None)
    if domain is None or not legs:
        return
    ends = np.array([(g.origin_lat, g.origin_lng, g.dest_lat, g.dest_lng) for g in legs], dtype=float)
    faults = [(loc, why) for loc, why in zip(locs, domain.reasons(*ends.T), strict=True) if why is not None]
    if faults:
        (loc, why), *more = faults
        raise InvalidRequest(loc, why, status=422, kind="out_of_domain", more=more)


def model_zone(model, locs: Sequence[Loc]) -> str:
    """The zone for the fields at `locs`, which gave none: the model's, when it was trained in one; else 422
    naming each field and the zones the model knows."""
    zones = getattr(getattr(model, "domain", None), "zones", ())
    if len(zones) == 1:
        return zones[0]
    known = f"several time zones ({', '.join(zones)}): say which" if zones else "no time zone: give one"
    why = f"tz is required: this model was trained in {known}"
    first, *more = locs
    raise InvalidRequest(first, why, status=422, kind="zone_required", more=[(loc, why) for loc in more])


def with_zones(model, legs: Sequence[LegPlace], locs: Sequence[Loc]) -> list:
    """The legs, each with its zone: a leg without tz takes the model's (`model_zone`)."""
    missing = [i for i, leg in enumerate(legs) if leg.tz is None]
    if not missing:
        return list(legs)
    zone = model_zone(model, [(*locs[i], "tz") for i in missing])
    return [leg if leg.tz else leg.model_copy(update={"tz": zone}) for leg in legs]


def enroute_of(model):
    """The model's en-route calibration, or the uncalibrated conditioning for a model saved without one."""
    from models.enroute import EnrouteCalibration

    if model.enroute is not None:
        return model.enroute
    return EnrouteCalibration(
        list(model.quantiles), offsets=[[0.0] * len(model.quantiles)] * 5, counts=[0] * 5
    )


def order_departure(leg: OrderLeg, planned_stop: PlannedStop | None, now: datetime) -> datetime:
    """When the order's leg departs: not before its departure_time nor before the planned stop is done (the
    later of the two given); with neither, now."""
    given = [leg.departure_time] if leg.departure_time is not None else []
    if planned_stop is not None:
        given.append(planned_stop.arrival + timedelta(seconds=planned_stop.service_time_s))
    return max(given) if given else now


def route_legs(origin: Point, stops: Sequence[Stop], tz: str, context: LegContext) -> list[LegPlace]:
    """origin -> stop 1 -> stop 2 ...: one leg per stop, sharing the route's courier, vehicle and weather."""
    points = [(origin.lat, origin.lng)] + [(stop.lat, stop.lng) for stop in stops]
    shared = context.model_dump()
    return [
        LegPlace.model_construct(
            origin_lat=a[0],
            origin_lng=a[1],
            dest_lat=b[0],
            dest_lng=b[1],
            tz=tz,
            road_distance_km=stop.road_distance_km,
            leg_id=stop.stop_id,
            **shared,
        )
        for a, b, stop in zip(points[:-1], points[1:], stops, strict=True)
    ]


def stop_etas(
    departure: datetime,
    zone: ZoneInfo,
    stops: Sequence[Stop],
    q: np.ndarray,
    quantiles: Sequence[float],
    arrivals: np.ndarray,
    levels: Sequence[float],
) -> list[StopEta]:
    bounds = route.arrival_bounds(arrivals, levels)
    medians = np.median(arrivals, axis=0)
    leg_medians = quantile_at(q, quantiles, 0.5)
    out = []
    for i, stop in enumerate(stops):
        windows = [
            Interval(
                level=level,
                lower_s=round(float(lo[i]), SECONDS_DECIMALS),
                upper_s=round(float(hi[i]), SECONDS_DECIMALS),
                earliest_arrival=arrival(departure, lo[i], zone),
                latest_arrival=arrival(departure, hi[i], zone),
            )
            for level, (lo, hi) in zip(levels, bounds, strict=True)
        ]
        out.append(
            StopEta(
                index=i,
                stop_id=stop.stop_id,
                leg_median_s=round(float(leg_medians[i]), SECONDS_DECIMALS),
                arrival_median=arrival(departure, medians[i], zone),
                arrival_median_s=round(float(medians[i]), SECONDS_DECIMALS),
                departure_median=arrival(departure, medians[i] + stop.service_time_s, zone),
                windows=windows,
            )
        )
    return out
