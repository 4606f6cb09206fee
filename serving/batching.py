"""Adaptive micro-batching: concurrent requests share one feature + booster call, without a fixed wait.

While one batch computes on the prediction thread, new requests queue; when it finishes, everything queued
(up to `max_rows`) goes into the next call. A lone request never waits for company, so sequential latency
is unchanged, and under load the per-call overhead (feature query planning, booster set-up) is paid once
per batch instead of once per request. Requests are grouped by model snapshot, so a batch never mixes
model versions; a failing batch is retried request by request, so one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import polars as pl

logger = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)


@dataclass(eq=False)
class _Pending(Generic[K]):
    key: K
    frame: pl.DataFrame
    future: asyncio.Future


class MicroBatcher(Generic[K]):
    """`await submit(key, frame)` -> `predict(key, frame)` rows, computed together with concurrent submits."""

    def __init__(
        self, predict: Callable[[K, pl.DataFrame], np.ndarray], executor: Executor, max_rows: int = 2000
    ) -> None:
        self.predict, self.executor, self.max_rows = predict, executor, max_rows
        self._queue: deque[_Pending[K]] = deque()
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

    async def submit(self, key: K, frame: pl.DataFrame) -> np.ndarray:
        if self._task is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(key, frame, future))
        self._wakeup.set()
        return await future

    def _take_batch(self) -> list[_Pending[K]]:
        """Everything queued for the first request's key, up to max_rows (at least one request)."""
        first = self._queue.popleft()
        batch, rows = [first], first.frame.height
        while (
            self._queue
            and self._queue[0].key is first.key
            and rows + self._queue[0].frame.height <= self.max_rows
        ):
            pending = self._queue.popleft()
            batch.append(pending)
            rows += pending.frame.height
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
            frame = batch[0].frame if len(batch) == 1 else pl.concat([p.frame for p in batch])
            try:
                q = await loop.run_in_executor(self.executor, self.predict, batch[0].key, frame)
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
                            self.executor, self.predict, pending.key, pending.frame
                        )
                    except Exception as own_exc:
                        _fail(pending, own_exc)
                    else:
                        _resolve(pending, own)
                continue
            offset = 0
            for pending in batch:
                _resolve(pending, q[offset : offset + pending.frame.height])
                offset += pending.frame.height


def _resolve(pending: _Pending, result: np.ndarray) -> None:
    if not pending.future.done():
        pending.future.set_result(result)


def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(exc)
