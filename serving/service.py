"""The ETA service: BentoML endpoints over `serving.predictor.EtaPredictor` (which holds the logic).

    bentoml serve serving.service:EtaService        (or `eta serve`; OpenAPI page at /, schema at /docs.json)

The model comes from the MLflow registry (`models:/eta-model@champion`, tracking URI from the environment)
or, when served from a built Bento, from the model the Bento carries. Configuration: `serving.config`.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING

import bentoml
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from serving.config import MODEL_ENDPOINTS, STATUS_PATH, ServingConfig, untraced_patterns
from serving.errors import InvalidRequest
from serving.guard import RequestGuard, drop_service, register_service
from serving.patches import cancel_request_timers
from serving.schemas import (
    DEFAULT_LEVELS,
    ActiveDelivery,
    AdminRequest,
    Confidence,
    DeliveryWindow,
    DeliveryWindowRequest,
    EtaRequest,
    EtaResponse,
    ExceptionRisk,
    ExceptionRiskRequest,
    Leg,
    LegContext,
    Levels,
    Moment,
    OptionalZone,
    OrderLeg,
    PlannedStop,
    Point,
    RouteEta,
    RouteRequest,
    Seed,
    ServiceStatus,
    SlotMinutes,
    Stop,
    SwapResult,
)

if TYPE_CHECKING:
    from serving.model_source import ModelSource

logger = logging.getLogger(__name__)
JSON = "application/json"


class _ClientErrorTracebacks(logging.Filter):
    """BentoML logs a traceback at ERROR for every request that fails validation; those are the client's
    errors (answered with a 4xx and counted in the access log), not the server's."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


def online_store(config: ServingConfig):
    """The online calibration states the service applies (None when turned off)."""
    if not config.online_calibration:
        return None
    from pathlib import Path

    from data_contracts.home import eta_home
    from models.online import StateStore

    return StateStore(Path(config.online_state_dir) if config.online_state_dir else eta_home() / "online")


def choose_source(config: ServingConfig, bento) -> ModelSource:
    """The Bento's own model when served from a Bento that carries one (unless told otherwise), else the
    registry as a publisher process keeps it on local disk (serving.publisher)."""
    from models.tracking import tracking_uri
    from serving.model_source import BentoStoreSource, PublishedSource, published_folder

    carried = [m for m in (bento.info.all_models if bento else []) if m.tag.name == config.model_name]
    if config.model_source == "bento" or (config.model_source == "auto" and carried):
        if not carried:
            raise RuntimeError(f"ETA_SERVE_MODEL_SOURCE=bento, but this Bento carries no {config.model_name}")
        stored = bentoml.models.get(carried[0].tag)
        return BentoStoreSource(stored.path, dict(stored.info.labels))
    uri = tracking_uri()
    folder = published_folder(uri, config.model_name, config.model_alias)
    return PublishedSource(folder, uri, config.model_name, config.model_alias, config.poll_seconds)


def _log_to_the_service_log() -> None:
    """The project's own INFO lines (loads, swaps, failed checks, publisher restarts) in the worker's log."""
    project = logging.getLogger("serving")
    if not project.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        project.addHandler(handler)
        project.setLevel(logging.INFO)
        project.propagate = False


# BentoML opens OpenTelemetry spans around every request even when it exports none (its default). Under 16
# concurrent clients that was ~35% of the worker's GIL time (py-spy), more than the endpoints' own code, and
# skipping it on the model endpoints took single-leg /eta from 175 to 249 requests/s.
@bentoml.service(
    name="lastmile-eta",
    workers=1,
    traffic={"timeout": 60},
    labels={"project": "lastmile-eta"},
    tracing={"excluded_urls": untraced_patterns(MODEL_ENDPOINTS)},
)
class EtaService:
    """Calibrated delivery ETAs: quantiles per leg, customer delivery windows, multi-stop route arrivals.

    Each endpoint's body is its `*Request` model (unknown fields are refused); the method parameters are
    those fields, so the class can also be called in-process."""

    def __init__(self) -> None:
        endpoint_logger = logging.getLogger("bentoml._internal.server.http_app")
        if not any(isinstance(f, _ClientErrorTracebacks) for f in endpoint_logger.filters):
            endpoint_logger.addFilter(_ClientErrorTracebacks())
        # The model code (polars, LightGBM, the predictor) is imported here, not at module level: `bentoml
        # serve` imports this module in its own process too, only to read the service's configuration,
        # and that import is on the way to /readyz (see serving/README.md, "Start-up").
        self.config = ServingConfig.from_env()
        cancel_request_timers()  # see serving.patches: BentoML leaves a live timer per answered request
        _log_to_the_service_log()
        # first the source: a registry source starts its publisher (if `eta serve` has not), which imports
        # mlflow on the other core while this process imports the model code
        source = choose_source(self.config, EtaService.bento)
        from serving.model_source import ModelHolder, SourceUnavailable
        from serving.predictor import EtaPredictor

        self.holder = ModelHolder(source, self.config.tree_threads, online_store(self.config))
        try:  # a Bento's model (or a publisher that already checked) is there at once
            self.holder.refresh()
        except SourceUnavailable as exc:  # the service starts anyway: /readyz says why, the poller retries
            logger.info("event=waiting reason=%s", exc)
        self.predictor = EtaPredictor(self.holder, self.config)
        register_service(self.predictor)

    @bentoml.on_startup
    async def start_background_work(self) -> None:
        await self.predictor.start()
        # What start-up built (mlflow, BentoML, the model: ~380k objects) lives as long as the worker.
        # Left in the collector's oldest generation, every full collection re-scanned it: ~220 ms, which
        # showed as the p99 of 1,000-leg batches. Frozen, a collection scans only what requests created.
        gc.collect()
        gc.freeze()

    @bentoml.on_shutdown
    async def stop_background_work(self) -> None:
        drop_service(self.predictor)
        await self.predictor.stop()

    def __is_ready__(self) -> bool:
        return self.predictor.readiness()[0]

    @bentoml.api(route="/eta", input_spec=EtaRequest)
    async def eta(self, legs: list[Leg], levels: Levels = DEFAULT_LEVELS) -> EtaResponse:
        """Calibrated quantiles and interval arrival times for a batch of legs.

        Returns the `EtaResponse` already serialised (a JSON response): the routing layer's hot path."""
        answer = await _answer(self.predictor.eta(legs, list(levels)))
        return answer if isinstance(answer, Response) else Response(answer, media_type=JSON)

    @bentoml.api(route="/delivery_window", input_spec=DeliveryWindowRequest)
    async def delivery_window(
        self,
        leg: OrderLeg,
        planned_stop: PlannedStop | None = None,
        confidence: Confidence = 0.9,
        slot_minutes: SlotMinutes = 15,
    ) -> DeliveryWindow:
        """A window on the customer's clock, rounded outward to the slot grid, that holds `confidence`."""
        return await _answer(self.predictor.delivery_window(leg, planned_stop, confidence, slot_minutes))

    @bentoml.api(route="/route_eta", input_spec=RouteRequest)
    async def route_eta(
        self,
        origin: Point,
        departure_time: Moment,
        stops: list[Stop],
        tz: OptionalZone = None,
        context: LegContext = LegContext(),
        levels: Levels = DEFAULT_LEVELS,
        seed: Seed = 0,
    ) -> RouteEta:
        """Arrival windows at every stop of a route (sum of legs simulated, not quantiles added)."""
        return await _answer(
            self.predictor.route_eta(origin, departure_time, tz, stops, context, list(levels), seed)
        )

    @bentoml.api(route="/exception_risk", input_spec=ExceptionRiskRequest)
    async def exception_risk(
        self, deliveries: list[ActiveDelivery], now: Moment | None = None, confidence: Confidence = 0.9
    ) -> ExceptionRisk:
        """For dispatchers: per active delivery, the calibrated probability of missing its promise, the
        expected lateness and a revised window at `confidence`."""
        return await _answer(self.predictor.exception_risk(deliveries, now, confidence))

    @bentoml.api(route=STATUS_PATH, input_spec=AdminRequest)
    async def status(self) -> ServiceStatus:
        """The model being served and how much the micro-batcher is coalescing (GET or POST)."""
        return await _answer(_now(self.predictor.status))

    @bentoml.api(route="/admin/reload", input_spec=AdminRequest)
    async def reload(self) -> SwapResult:
        """Have the registry checked now and swap the model if the alias moved (also done by polling)."""
        return await _answer(self.predictor.reload())


EtaService.add_asgi_middleware(RequestGuard)


async def _now(function):
    return function()


async def _answer(pending):
    """The endpoint's answer; a client error as a 4xx JSON response, no model or an unreachable registry
    as 503 with the reason."""
    from serving.model_source import NoModel, SourceUnavailable

    try:
        return await pending
    except InvalidRequest as exc:
        return JSONResponse(exc.body(), status_code=exc.status)
    except (NoModel, SourceUnavailable) as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
