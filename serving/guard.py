"""ASGI middleware in front of the endpoints: API key, content type, body size, readable 400s.

- Probes (/livez, /readyz, /healthz) pass untouched, so orchestrators need no key.
- With an API key configured, any other request without the right `X-API-Key` header gets 401.
- POST bodies must be JSON (a missing Content-Type is read as JSON) -> else 415; larger than the
  configured maximum -> 413 before the body reaches the service.
- BentoML's 400 bodies say "1 validation error for Input"; the summary is rewritten to name the field.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from serving.config import API_KEY_HEADER, ServingConfig
from serving.errors import error_body

PROBE_PATHS = frozenset({"/livez", "/readyz", "/healthz"})
# Readiness checks of the services built in this process, newest last: () -> (ready, reason). A worker
# builds one; tests build several, and a service that shut down is removed so the one before answers again.
_readiness: list = []


def set_readiness(check) -> None:
    """The service's readiness check, answered by this middleware on /readyz (with the reason when not)."""
    _readiness.append(check)


def drop_readiness(check) -> None:
    """A service that shuts down stops answering /readyz."""
    if check in _readiness:
        _readiness.remove(check)


JSON_TYPES = frozenset({"application/json", ""})

Scope = dict[str, Any]


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
        if scope["type"] == "http" and scope.get("path") == "/readyz" and _readiness:
            ready, reason = _readiness[-1]()  # the last check's verdict: no prediction per probe
            body = json.dumps({"ready": ready, "detail": reason} if ready else {"error": reason}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200 if ready else 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http" or scope.get("path") in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        if self.config.auth_enabled and not self._authorized(scope):
            await _respond(send, 401, ["header", API_KEY_HEADER], "missing or wrong API key", "unauthorized")
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
        await self.app(scope, _replay(body, receive), _readable_400s(send))

    def _authorized(self, scope: Scope) -> bool:
        given = _header(scope, API_KEY_HEADER.encode()) or ""
        return hmac.compare_digest(given.encode(), (self.config.api_key or "").encode())

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
    """Buffer a 400 response and rewrite its summary; every other response streams through untouched."""
    held: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] == 400:
            held["start"] = message
            return
        if "start" not in held or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = rewrite_validation_error(b"".join(chunks))
        headers = [(k, v) for k, v in held["start"].get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**held["start"], "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped
