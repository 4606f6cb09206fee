"""Adaptive micro-batching: concurrent requests share one frame + feature + booster call, without a fixed wait.

While one batch computes on the prediction thread, new requests queue; when it finishes, everything queued
(up to `max_rows`) goes into the next call. A lone request never waits for company, so sequential latency
is unchanged, and under load the per-call overhead (feature query planning, booster set-up) is paid once
per batch instead of once per request. A request hands over its rows as they are (validated legs, say),
so that turning them into a frame is also done once per batch, on the prediction thread. Requests are
grouped by model snapshot, so a batch never mixes model versions; a failing batch is retried request by
request, so one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

logger = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


@dataclass(eq=False)
class _Pending(Generic[K, R]):
    key: K
    rows: Sequence[R]
    future: asyncio.Future


class MicroBatcher(Generic[K, R]):
    """`await submit(key, rows)` -> `predict(key, rows)`, one result row per input row, computed together with
    concurrent submits (`predict` then sees their rows concatenated, in submission order)."""

    def __init__(
        self, predict: Callable[[K, Sequence[R]], np.ndarray], executor: Executor, max_rows: int = 2000
    ) -> None:
        self.predict, self.executor, self.max_rows = predict, executor, max_rows
        self._queue: deque[_Pending[K, R]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.calls = self.requests = self.largest = (
            0  # model calls, requests answered, most requests in a call
        )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="eta-micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the service is shutting down"))

    async def submit(self, key: K, rows: Sequence[R]) -> np.ndarray:
        if self._task is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(key, rows, future))
        self._wakeup.set()
        return await future

    def _take_batch(self) -> list[_Pending[K, R]]:
        """Everything queued for the first request's key, up to max_rows (at least one request)."""
        first = self._queue.popleft()
        batch, rows = [first], len(first.rows)
        while (
            self._queue
            and self._queue[0].key is first.key
            and rows + len(self._queue[0].rows) <= self.max_rows
        ):
            pending = self._queue.popleft()
            batch.append(pending)
            rows += len(pending.rows)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [p for p in self._take_batch() if not p.future.cancelled()]
            if not batch:
                continue
            self.calls, self.requests = self.calls + 1, self.requests + len(batch)
            self.largest = max(self.largest, len(batch))
            rows = batch[0].rows if len(batch) == 1 else [row for p in batch for row in p.rows]
            try:
                q = await loop.run_in_executor(self.executor, self.predict, batch[0].key, rows)
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch[0], exc)
                    continue
                logger.warning(
                    "a batch of %d requests failed (%s); retrying them one by one", len(batch), exc
                )
                for pending in batch:
                    try:
                        own = await loop.run_in_executor(
                            self.executor, self.predict, pending.key, pending.rows
                        )
                    except Exception as own_exc:
                        _fail(pending, own_exc)
                    else:
                        _resolve(pending, own)
                continue
            offset = 0
            for pending in batch:
                _resolve(pending, q[offset : offset + len(pending.rows)])
                offset += len(pending.rows)


def _resolve(pending: _Pending, result: np.ndarray) -> None:
    if not pending.future.done():
        pending.future.set_result(result)


def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(exc)
