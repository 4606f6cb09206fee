"""ASGI middleware in front of the endpoints: API key, content type, body size, readable 400s.

- Probes (/livez, /readyz, /healthz) pass untouched, so orchestrators need no key.
- With an API key configured, any other request without the right `X-API-Key` header gets 401.
- /admin/* needs `X-Admin-Key` when an admin key is configured (401), and else answers only callers on
  loopback (403): a service bound to every interface never leaves its swaps open to the network.
- POST bodies must be JSON (a missing Content-Type is read as JSON) -> else 415; larger than the
  configured maximum -> 413 before the body reaches the service.
- A JSON object that repeats a key -> 400 naming the key (JSON parsers would keep the last one silently).
- BentoML's 400 bodies say "1 validation error for Input"; the summary is rewritten to name the field.
- /docs.json is BentoML's document completed by `serving.openapi.published_spec`, naming the served model.
- GET /admin/status is answered by its POST endpoint (BentoML endpoints take POST only).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any

from serving.config import ADMIN_KEY_HEADER, ADMIN_PREFIX, API_KEY_HEADER, STATUS_PATH, ServingConfig
from serving.errors import error_body

PROBE_PATHS = frozenset({"/livez", "/readyz", "/healthz"})
SPEC_PATH = "/docs.json"
# The predictors of the services built in this process, newest last: their `readiness()` answers /readyz
# and their `served()` model is named in /docs.json. A worker builds one; tests build several, and a
# service that shut down is removed so the one before answers again.
_services: list = []


def register_service(predictor) -> None:
    """The service's predictor: this middleware answers /readyz from it (with the reason when not ready)."""
    _services.append(predictor)


def drop_service(predictor) -> None:
    """A service that shuts down stops answering /readyz."""
    if predictor in _services:
        _services.remove(predictor)


JSON_TYPES = frozenset({"application/json", ""})

Scope = dict[str, Any]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost (an ASGI test client's "testclient" is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _matches(scope: Scope, header: str, key: str | None) -> bool:
    given = _header(scope, header.encode()) or ""
    return hmac.compare_digest(given.encode(), (key or "").encode())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _respond(send, status: int, loc: list[str], message: str, kind: str) -> None:
    body = json.dumps(error_body([{"type": kind, "loc": loc, "msg": message}])).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'ApiKey header="X-API-Key"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def rewrite_validation_error(body: bytes) -> bytes:
    """A BentoML/pydantic 400 body with a summary naming each invalid field (unchanged if not that shape)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if not isinstance(payload, dict) or not isinstance(payload.get("detail"), list):
        return body
    errors = [
        {k: v for k, v in e.items() if k in ("type", "loc", "msg")}
        for e in payload["detail"]
        if isinstance(e, dict)
    ]
    return json.dumps(error_body(errors)).encode() if errors else body


class RequestGuard:
    """Pure ASGI middleware (no Starlette request objects: it must cost microseconds per request)."""

    def __init__(self, app, config: ServingConfig | None = None) -> None:
        self.app = app
        self.config = config or ServingConfig.from_env()

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("path") == "/readyz" and _services:
            await self._readiness(scope, send)
            return
        if scope["type"] == "http" and scope.get("path") == SPEC_PATH and scope.get("method") == "GET":
            await self.app(scope, receive, self._published_spec(send))
            return
        if scope["type"] != "http" or scope.get("path") in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        if self.config.auth_enabled and not _matches(scope, API_KEY_HEADER, self.config.api_key):
            await _respond(send, 401, ["header", API_KEY_HEADER], "missing or wrong API key", "unauthorized")
            return
        if scope.get("path", "").startswith(ADMIN_PREFIX) and not await self._admin_allowed(scope, send):
            return
        if scope.get("path") == STATUS_PATH and scope.get("method") != "POST":
            await self._status_by_get(scope, receive, send)
            return
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        media_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if media_type not in JSON_TYPES:
            await _respond(
                send,
                415,
                ["header", "content-type"],
                f"expected application/json, got {media_type}",
                "media_type",
            )
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        repeated = repeated_key(body)
        if repeated is not None:
            await _respond(
                send, 400, ["body"], f"the key {repeated!r} appears twice in one object", "duplicate_key"
            )
            return
        await self.app(scope, _replay(body, receive), _readable_400s(send))

    async def _readiness(self, scope: Scope, send) -> None:
        """The last check's verdict (no prediction per probe); GET and HEAD only, as the other probes."""
        if scope.get("method") not in ("GET", "HEAD"):
            await _not_allowed(send, b"GET, HEAD")
            return
        ready, reason = _services[-1].readiness()
        body = json.dumps({"ready": ready, "detail": reason} if ready else {"error": reason}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200 if ready else 503, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})

    def _published_spec(self, send):
        """BentoML's /docs.json answer, rewritten by serving.openapi (a failed answer passes unchanged)."""
        from serving.openapi import published_spec

        def rewrite(body: bytes) -> bytes:
            served = _services[-1].served() if _services else None
            return json.dumps(published_spec(json.loads(body), self.config, served)).encode()

        return _rewritten(send, rewrite)

    async def _status_by_get(self, scope: Scope, receive, send) -> None:
        """GET /admin/status as a POST of `{}` to its endpoint; any other method 405."""
        if scope.get("method") != "GET":
            await _not_allowed(send, b"GET, POST")
            return
        body_headers = (b"content-length", b"content-type")
        kept = [header for header in scope.get("headers") or () if header[0].lower() not in body_headers]
        headers = [*kept, (b"content-type", b"application/json"), (b"content-length", b"2")]
        await self.app({**scope, "method": "POST", "headers": headers}, _replay(b"{}", receive), send)

    async def _admin_allowed(self, scope: Scope, send) -> bool:
        """True, or False after answering 401 (wrong admin key) or 403 (no admin key, caller off loopback)."""
        if self.config.admin_key:
            if _matches(scope, ADMIN_KEY_HEADER, self.config.admin_key):
                return True
            await _respond(
                send, 401, ["header", ADMIN_KEY_HEADER], "missing or wrong admin key", "unauthorized"
            )
            return False
        if is_loopback((scope.get("client") or ("",))[0]):
            return True
        message = "the admin endpoints answer callers on loopback only unless ETA_SERVE_ADMIN_KEY is set"
        await _respond(send, 403, ["header", ADMIN_KEY_HEADER], message, "forbidden")
        return False

    async def _read_body(self, scope: Scope, receive, send) -> bytes | None:
        """The whole body, or None after answering 413 (declared or actual size over the maximum)."""
        limit = self.config.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _respond(
                send,
                413,
                ["body"],
                f"request body larger than {limit} bytes (or a bad Content-Length)",
                "too_large",
            )
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _respond(send, 413, ["body"], f"request body larger than {limit} bytes", "too_large")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _not_allowed(send, allow: bytes) -> None:
    headers = [(b"allow", allow), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 405, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _replay(body: bytes, receive):
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _readable_400s(send):
    """A 400 response with its summary rewritten to name each field; every other one streams through."""
    return _rewritten(send, rewrite_validation_error, status=400)


def _rewritten(send, rewrite, status: int = 200):
    """Buffer a response of `status` and send `rewrite(body)` instead; any other response streams through."""
    held: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] == status:
            held["start"] = message
            return
        if "start" not in held or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = rewrite(b"".join(chunks))
        headers = [(k, v) for k, v in held["start"].get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**held["start"], "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped


class _Repeated(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _Repeated(next(k for k, _ in pairs if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
    return obj


def repeated_key(body: bytes) -> str | None:
    """The first key some object of the JSON body repeats, or None (also for a body that is not JSON: the
    endpoint's own parser names that)."""
    try:
        json.loads(body, object_pairs_hook=_unique_pairs)
    except _Repeated as exc:
        return str(exc.args[0])
    except ValueError:
        return None
    return None
