"""Level 2: the service's ASGI app through a test client: every endpoint, every kind of bad input."""

from __future__ import annotations

import json
import pickle

import pytest

from serving.errors import dotted
from serving.schemas import DeliveryWindow, EtaResponse, RouteEta, ServiceStatus, SwapResult
from tests.serving.conftest import LOOPBACK, wait_ready
from tests.serving.payloads import ROUTE, leg_json


def test_eta(client, champion) -> None:
    response = client.post("/eta", json={"legs": [leg_json(leg_id="x1"), leg_json()]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = EtaResponse.model_validate_json(response.content)
    assert [leg.leg_id for leg in answer.legs] == ["x1", None]
    assert [i.level for i in answer.legs[0].intervals] == [0.8, 0.9]  # the default levels
    assert answer.model.version == champion.version


def test_delivery_window(client) -> None:
    response = client.post(
        "/delivery_window", json={"leg": leg_json(), "slot_minutes": 10, "confidence": 0.8}
    )
    assert response.status_code == 200
    answer = DeliveryWindow.model_validate_json(response.content)
    assert answer.slot_minutes == 10
    assert answer.window_start.minute % 10 == 0
    assert answer.text.startswith("arrives between ")


def test_route_eta(client) -> None:
    response = client.post("/route_eta", json=ROUTE)
    assert response.status_code == 200
    answer = RouteEta.model_validate_json(response.content)
    assert [s.stop_id for s in answer.stops] == ["a", "b"]
    assert answer.stops[1].arrival_median_s > answer.stops[0].arrival_median_s


def test_admin_status(client, champion) -> None:
    client.post("/eta", json={"legs": [leg_json()]})
    status = ServiceStatus.model_validate_json(client.post("/admin/status", json={}).content)
    assert status.model.version == champion.version
    assert status.batching is True
    assert status.model_calls >= 1
    assert status.max_requests_per_call >= 1


def test_admin_status_answers_get_as_post_does(client, champion) -> None:
    got, posted = client.get("/admin/status"), client.post("/admin/status", json={})
    assert (got.status_code, got.headers["content-type"]) == (200, "application/json")
    assert (
        ServiceStatus.model_validate_json(got.content).model
        == ServiceStatus.model_validate_json(posted.content).model
    )
    assert got.json()["model"]["version"] == champion.version
    for method in ("PUT", "DELETE", "HEAD"):
        refused = client.request(method, "/admin/status")
        assert (refused.status_code, refused.headers["allow"]) == (405, "GET, POST"), method


def test_admin_reload(client) -> None:
    response = client.post("/admin/reload", json={})
    assert response.status_code == 200
    assert SwapResult.model_validate_json(response.content).swapped is False


@pytest.mark.parametrize(("path", "status"), [("/livez", 200), ("/readyz", 200), ("/healthz", 200)])
def test_probes(client, path: str, status: int) -> None:
    assert client.get(path).status_code == status


def test_openapi_page_and_schema(client, champion) -> None:
    import tomllib

    from data_contracts.home import PROJECT_ROOT

    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert "text/html" in client.get("/").headers["content-type"]  # Swagger UI, showing the info below
    spec = client.get("/docs.json").json()
    assert {"/eta", "/delivery_window", "/route_eta", "/admin/reload", "/admin/status"} <= set(spec["paths"])
    assert spec["info"] == {
        "title": "lastmile-eta",
        "version": version,
        "description": "Calibrated delivery ETAs: per-leg quantiles, customer delivery windows, multi-stop "
        f"route arrivals.\n\nServing `eta-model@champion`, version {champion.version} (from the registry).",
    }
    assert "BentoML" not in json.dumps(spec["info"])


@pytest.mark.parametrize("tz", [None, "omitted"])
def test_a_leg_may_leave_out_tz_or_send_null(client, tz) -> None:
    """The model knows one zone: a leg without one is answered on that clock, and the answer names it."""
    leg = leg_json() | {"tz": None}
    if tz == "omitted":
        del leg["tz"]
    response = client.post("/eta", json={"legs": [leg]})
    assert response.status_code == 200, response.text
    assert response.json()["legs"][0]["tz"] == "Africa/Nairobi"
    assert response.json()["legs"][0] == client.post("/eta", json={"legs": [leg_json()]}).json()["legs"][0]
    route = client.post("/route_eta", json={k: v for k, v in ROUTE.items() if k != "tz"})
    assert (route.status_code, route.json()["tz"]) == (200, "Africa/Nairobi")


def legs_body(**overrides: object) -> dict:
    return {"legs": [leg_json(**overrides)]}


BAD_REQUESTS = [
    # (name, path, body (dict = JSON, bytes = raw), content type, status, loc of the first error)
    ("lat out of range", "/eta", legs_body(origin_lat=123.0), None, 400, ["legs", 0, "origin_lat"]),
    ("lng out of range", "/eta", legs_body(dest_lng=-200), None, 400, ["legs", 0, "dest_lng"]),
    (
        "NaN",
        "/eta",
        json.dumps(legs_body()).replace("-1.293,", "NaN,").encode(),
        None,
        400,
        ["legs", 0, "dest_lat"],
    ),
    ("unknown zone", "/eta", legs_body(tz="Africa/Atlantis"), None, 400, ["legs", 0, "tz"]),
    (
        "naive time",
        "/eta",
        legs_body(departure_time="2026-01-20T09:30:00"),
        None,
        400,
        ["legs", 0, "departure_time"],
    ),
    ("empty batch", "/eta", {"legs": []}, None, 400, ["legs"]),
    ("no legs", "/eta", {}, None, 400, ["legs"]),
    ("legs not a list", "/eta", {"legs": {"a": 1}}, None, 400, ["legs"]),
    ("unknown field", "/eta", {"legs": [leg_json()], "level": [0.8]}, None, 400, ["level"]),
    ("level too wide", "/eta", {"legs": [leg_json()], "levels": [0.99]}, None, 400, ["levels", 0]),
    ("level not a fraction", "/eta", {"legs": [leg_json()], "levels": [80]}, None, 400, ["levels", 0]),
    ("malformed JSON", "/eta", b'{"legs": [', None, 400, []),
    ("empty body", "/eta", b"", None, 400, ["legs"]),
    ("array body", "/eta", b"[1, 2]", None, 400, []),
    ("not UTF-8", "/eta", b"\xff\xfe\x00", None, 400, []),
    ("plain text", "/eta", json.dumps(legs_body()).encode(), "text/plain", 415, ["header", "content-type"]),
    ("form", "/eta", b"legs=1", "application/x-www-form-urlencoded", 415, ["header", "content-type"]),
    ("multipart", "/eta", b"--x--", "multipart/form-data; boundary=x", 415, ["header", "content-type"]),
    (
        "pickle",
        "/eta",
        pickle.dumps(legs_body()),
        "application/vnd.bentoml+pickle",
        415,
        ["header", "content-type"],
    ),
    ("window: slot", "/delivery_window", {"leg": leg_json(), "slot_minutes": 7}, None, 400, ["slot_minutes"]),
    (
        "window: confidence",
        "/delivery_window",
        {"leg": leg_json(), "confidence": 1.5},
        None,
        400,
        ["confidence"],
    ),
    (
        "window: too wide",
        "/delivery_window",
        {"leg": leg_json(), "confidence": 0.95},
        None,
        400,
        ["confidence"],
    ),
    (
        "repeated key",
        "/eta",
        b'{"levels": [0.8], "levels": [0.9], "legs": []}',
        None,
        400,
        ["body"],
    ),
    ("a number as text", "/eta", legs_body(origin_lat="-1.28"), None, 400, ["legs", 0, "origin_lat"]),
    (
        "a boolean distance",
        "/eta",
        legs_body(road_distance_km=False),
        None,
        400,
        ["legs", 0, "road_distance_km"],
    ),
    ("route: no stops", "/route_eta", {**ROUTE, "stops": []}, None, 400, ["stops"]),
    (
        "route: bad stop",
        "/route_eta",
        {**ROUTE, "stops": [{"lat": 0, "lng": 500}]},
        None,
        400,
        ["stops", 0, "lng"],
    ),
    ("route: zone", "/route_eta", {**ROUTE, "tz": "UTC+3"}, None, 400, ["tz"]),
    ("route: seed", "/route_eta", {**ROUTE, "seed": -1}, None, 400, ["seed"]),
]


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "loc"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_gets_a_4xx_naming_the_field(client, path, body, content_type, status, loc) -> None:
    headers = {"content-type": content_type or "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, content=content, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["detail"][0]["loc"] == loc
    assert error["error"].startswith(f"{dotted(loc)}: ")  # the message names the field
    # and the service keeps serving
    assert client.post("/eta", json=legs_body()).status_code == 200


def test_wrong_method_and_unknown_path(client) -> None:
    assert client.get("/eta").status_code == 405
    assert client.post("/nowhere", json={}).status_code == 404


@pytest.fixture(scope="module")
def locked_client(champion):
    """The app with an API key, an admin key, small batch maxima and a small body limit."""
    from starlette.testclient import TestClient

    from serving.service import EtaService

    limits = {
        "ETA_SERVE_API_KEY": "s3cret",
        "ETA_SERVE_ADMIN_KEY": "adm1n",
        "ETA_SERVE_MAX_LEGS": "3",
        "ETA_SERVE_MAX_STOPS": "1",
        "ETA_SERVE_MAX_BODY_BYTES": "4000",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in limits.items():
            patch.setenv(key, value)
        with TestClient(EtaService.to_asgi(), raise_server_exceptions=False, client=LOOPBACK) as test_client:
            test_client.headers["x-api-key"] = "s3cret"
            wait_ready(test_client)
            yield test_client


@pytest.mark.parametrize("key", ["", "wrong", "s3cret "])
def test_api_key_is_required_when_configured(locked_client, key: str) -> None:
    response = locked_client.post("/eta", json=legs_body(), headers={"x-api-key": key})
    assert response.status_code == 401
    assert response.json()["detail"][0]["loc"] == ["header", "x-api-key"]
    assert locked_client.post("/eta", json=legs_body()).status_code == 200  # with the client's own key


@pytest.mark.parametrize("key", ["", "s3cret", "adm1n "])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_admin_endpoints_need_the_admin_key_when_configured(locked_client, key: str, method: str) -> None:
    body = {"json": {}} if method == "POST" else {}
    response = locked_client.request(method, "/admin/status", headers={"x-admin-key": key}, **body)
    assert response.status_code == 401
    assert response.json()["error"] == "header.x-admin-key: missing or wrong admin key"
    allowed = locked_client.request(method, "/admin/status", headers={"x-admin-key": "adm1n"}, **body)
    assert allowed.status_code == 200


def _guarded(
    config, client: tuple[str, int], path: str, headers=(), method: str = "POST", seen: list | None = None
) -> tuple[int, bytes]:
    """One request through the guard alone (the app behind it answers 204; `seen` gets what it was sent:
    method, content type and body)."""
    import asyncio

    from serving.guard import RequestGuard

    sent: list[dict] = []

    async def app(scope, receive, send) -> None:
        if seen is not None:
            seen.append((scope["method"], dict(scope["headers"])[b"content-type"], (await receive())["body"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "client": client, "headers": list(headers)}
    asyncio.run(RequestGuard(app, config)(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    ("client", "path", "status"),
    [
        (("203.0.113.7", 5000), "/admin/reload", 403),
        (("10.0.0.2", 5000), "/admin/status", 403),
        (("127.0.0.1", 5000), "/admin/reload", 204),
        (("::1", 5000), "/admin/reload", 204),
        (("203.0.113.7", 5000), "/eta", 204),
    ],
)
def test_without_an_admin_key_admin_answers_loopback_callers_only(client, path, status) -> None:
    from serving.config import ServingConfig

    answered, body = _guarded(ServingConfig(), client, path)
    assert answered == status
    if status == 403:
        assert b"answer callers on loopback only unless ETA_SERVE_ADMIN_KEY is set" in body


def test_get_admin_status_is_its_post_of_an_empty_object_after_the_same_admin_rule() -> None:
    from serving.config import ServingConfig

    seen: list = []
    far = ("203.0.113.7", 5000)
    assert _guarded(ServingConfig(), far, "/admin/status", method="GET", seen=seen)[0] == 403
    assert (
        _guarded(ServingConfig(), LOOPBACK, "/admin/status", [(b"content-type", b"text/plain")], "GET", seen)[
            0
        ]
        == 204
    )
    keyed = ServingConfig(admin_key="adm1n")
    assert _guarded(keyed, far, "/admin/status", method="GET", seen=seen)[0] == 401
    assert _guarded(keyed, far, "/admin/status", [(b"x-admin-key", b"adm1n")], "GET", seen)[0] == 204
    assert seen == [("POST", b"application/json", b"{}")] * 2


def test_an_admin_key_opens_admin_to_any_caller_that_has_it() -> None:
    from serving.config import ServingConfig

    config = ServingConfig(admin_key="adm1n")
    far = ("203.0.113.7", 5000)
    assert _guarded(config, far, "/admin/reload", [(b"x-admin-key", b"adm1n")])[0] == 204
    assert _guarded(config, ("127.0.0.1", 1), "/admin/reload")[0] == 401


def test_probes_need_no_key(locked_client) -> None:
    for path in ("/livez", "/readyz"):
        assert locked_client.get(path, headers={"x-api-key": ""}).status_code == 200


def test_batch_maxima_come_from_configuration(locked_client) -> None:
    response = locked_client.post("/eta", json={"legs": [leg_json()] * 4})
    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["legs"]
    assert "maximum of 3" in response.json()["error"]
    assert locked_client.post("/eta", json={"legs": [leg_json()] * 3}).status_code == 200
    response = locked_client.post("/route_eta", json=ROUTE)
    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["stops"]


def test_request_size_is_bounded_declared_or_streamed(locked_client) -> None:
    big = json.dumps({"legs": [leg_json(leg_id="x" * 100)] * 20}).encode()
    assert len(big) > 4000
    response = locked_client.post("/eta", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["body"]

    def chunks():  # no Content-Length: the guard counts while reading
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    response = locked_client.post("/eta", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert locked_client.post("/eta", json=legs_body()).status_code == 200


def test_exception_risk(client) -> None:
    from datetime import timedelta

    from serving.schemas import ExceptionRisk
    from tests.serving.payloads import DEPARTURE

    body = {
        "now": (DEPARTURE + timedelta(minutes=25)).isoformat(),
        "deliveries": [
            {"leg": leg_json(leg_id="a"), "promised_by": (DEPARTURE + timedelta(minutes=30)).isoformat()},
            {"leg": leg_json(leg_id="b"), "promised_by": (DEPARTURE + timedelta(minutes=120)).isoformat()},
        ],
    }
    response = client.post("/exception_risk", json=body)
    assert response.status_code == 200, response.text
    answer = ExceptionRisk.model_validate_json(response.content)
    assert [d.leg_id for d in answer.deliveries] == ["a", "b"]
    assert answer.deliveries[0].late_probability > answer.deliveries[1].late_probability


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/eta", {"legs": [leg_json(elapsed_s=-5)]}, ["legs", 0, "elapsed_s"]),
        ("/eta", {"legs": [leg_json(elapsed_s=10 * 86_400)]}, ["legs", 0, "elapsed_s"]),
        (
            "/eta",
            {"legs": [leg_json(current_position={"lat": -1.29})]},
            ["legs", 0, "current_position", "lng"],
        ),
        ("/delivery_window", {"leg": leg_json(elapsed_s=float("nan"))}, ["leg", "elapsed_s"]),
        ("/exception_risk", {"deliveries": [{"leg": leg_json()}]}, ["deliveries", 0, "promised_by"]),
    ],
)
def test_bad_progress_and_promises_are_refused_by_name(client, path, body, loc) -> None:
    response = client.post(
        path, content=json.dumps(body, allow_nan=True), headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_a_delivery_that_departed_implausibly_long_ago_is_unanswerable(client) -> None:
    body = {
        "now": "2026-03-01T00:00:00Z",
        "deliveries": [{"leg": leg_json(), "promised_by": "2026-01-21T00:00:00Z"}],
    }
    response = client.post("/exception_risk", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["deliveries", 0, "leg", "departure_time"]
    assert "the leg departed 954 h before now, more than 24 h" in response.json()["error"]


def test_a_promise_at_or_before_departure_is_a_certain_miss(client) -> None:
    from serving.schemas import ExceptionRisk

    body = {
        "now": "2026-01-20T09:40:00+03:00",
        "deliveries": [{"leg": leg_json(), "promised_by": "2026-01-20T09:00:00+03:00"}],
    }
    response = client.post("/exception_risk", json=body)
    assert response.status_code == 200, response.text
    (risk,) = ExceptionRisk.model_validate_json(response.content).deliveries
    assert risk.late_probability == 1.0
    assert risk.expected_lateness_s > 1800  # half an hour late when it left


NEW_YORK = {"origin_lat": 40.7128, "origin_lng": -74.0060, "dest_lat": 40.7306, "dest_lng": -73.9866}
FAR = {"dest_lat": 1.2841, "dest_lng": -143.1767}  # the antipode of the Nairobi CBD: ~20,000 km


@pytest.mark.parametrize(
    ("path", "body", "loc", "reason"),
    [
        (
            "/eta",
            {"legs": [leg_json(), leg_json(**NEW_YORK, tz="America/New_York")]},
            ["legs", 1],
            "origin (40.71, -74.01) and destination (40.73, -73.99) are outside the area this model was "
            "trained on",
        ),
        (
            "/eta",
            {"legs": [leg_json(**FAR)]},
            ["legs", 0],
            "the leg is 20,015 km long; this model knows legs up to",
        ),
        (
            "/eta",
            {"legs": [leg_json(origin_lat=0.0, origin_lng=0.0)]},
            ["legs", 0],
            "origin is null island (0, 0)",
        ),
        ("/delivery_window", {"leg": leg_json(**FAR)}, ["leg"], "the leg is 20,015 km long"),
        (
            "/exception_risk",
            {
                "now": "2026-01-20T10:00:00+03:00",
                "deliveries": [{"leg": leg_json(**FAR), "promised_by": "2026-01-20T11:00:00+03:00"}],
            },
            ["deliveries", 0, "leg"],
            "the leg is 20,015 km long",
        ),
        (
            "/route_eta",
            {**ROUTE, "stops": [{"lat": 0.0, "lng": 0.0}]},
            ["stops", 0],
            "destination is null island",
        ),
    ],
)
def test_a_leg_outside_what_the_model_knows_is_refused_with_the_reason(
    client, path, body, loc, reason
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    (fault,) = response.json()["detail"]
    assert (fault["type"], fault["loc"]) == ("out_of_domain", loc)
    assert reason in fault["msg"]


def test_every_leg_outside_the_domain_is_named_in_one_answer(client) -> None:
    legs = [leg_json(**FAR), leg_json(), leg_json(origin_lat=0.0, origin_lng=0.0)]
    response = client.post("/eta", json={"legs": legs})
    assert response.status_code == 422
    assert [fault["loc"] for fault in response.json()["detail"]] == [["legs", 0], ["legs", 2]]
