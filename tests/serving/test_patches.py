"""The BentoML fix in serving.patches: request timers are cancelled, timeouts still answer 504."""

from __future__ import annotations

import asyncio
import gc

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from serving.patches import cancel_request_timers


async def _ok(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _slow(scope, receive, send) -> None:
    await asyncio.sleep(5)
    await _ok(scope, receive, send)


def _armed_timers() -> int:
    return sum(isinstance(o, asyncio.TimerHandle) and not o.cancelled() for o in gc.get_objects())


async def _serve(app, requests: int, timeout: float) -> tuple[list[int], int]:
    middleware = TimeoutMiddleware(app, timeout=timeout)
    statuses: list[int] = []

    async def send(message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    for _ in range(requests):
        await middleware({"type": "http"}, receive, send)
    await asyncio.sleep(0)  # a cancelled handler's own timers (its sleep) go on its next step
    return statuses, _armed_timers()


def test_answered_requests_leave_no_timer_behind() -> None:
    assert cancel_request_timers()
    assert cancel_request_timers()  # idempotent
    statuses, armed = asyncio.run(_serve(_ok, 200, timeout=60.0))
    assert statuses == [200] * 200
    assert armed == 0  # unpatched, BentoML leaves 200 timers armed for 60 s


def test_a_request_over_the_timeout_still_gets_504() -> None:
    cancel_request_timers()
    statuses, armed = asyncio.run(_serve(_slow, 1, timeout=0.05))
    assert statuses == [504]
    assert armed == 0
