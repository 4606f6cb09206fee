"""A fix to BentoML, applied when `serving.service` is imported.

BentoML's `TimeoutMiddleware` (bentoml 1.4, `traffic.timeout`) arms a `loop.call_later(timeout, ...)` per
request and never cancels it, so every answered request keeps a timer, its future and its context alive for
the whole timeout, and under load full garbage collections stall on them
(docs/decisions/bentoml-request-timers.md). The patched `__call__` below is BentoML's own, plus the timer's
cancellation once the request is over; the 504 on timeout is unchanged (tested).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.responses import JSONResponse

logger = logging.getLogger(__name__)


async def _timeout_call(self, scope: dict[str, Any], receive, send) -> None:
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if fut.cancel():
            response = JSONResponse(
                {"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504
            )
            await response(scope, receive, send)
    else:
        await fut
    finally:
        timer.cancel()  # the one line BentoML lacks


def cancel_request_timers() -> bool:
    """Patch BentoML's TimeoutMiddleware (idempotent); False if its shape is not the one this fix is for."""
    from bentoml._internal.server.http import traffic

    middleware = traffic.TimeoutMiddleware
    if middleware.__call__ is _timeout_call:
        return True
    if not callable(getattr(middleware, "_set_timer_out", None)):
        logger.warning("BentoML's TimeoutMiddleware changed; its request timers are left as they are")
        return False
    middleware.__call__ = _timeout_call
    return True
