"""The micro-batcher: concurrent submits share calls, answers go back to the right caller, failures stay local."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serving.batching import MicroBatcher


class SlowDouble:
    """predict(key, rows) -> 2x per row (3x for key "v2"), slowly, recording every call; a row of -1 fails
    its batch."""

    def __init__(self, delay: float = 0.02) -> None:
        self.calls: list[tuple[str, int]] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, key: str, rows: list[float]) -> np.ndarray:
        with self.lock:
            self.calls.append((key, len(rows)))
        threading.Event().wait(self.delay)
        x = np.asarray(rows)
        if (x == -1).any():
            raise ValueError("bad row")
        factor = 3 if key == "v2" else 2
        return np.column_stack([x * factor, x * factor + 1])


def run(coro):
    return asyncio.run(coro)


async def submit_all(batcher: MicroBatcher, items: list[tuple[str, list[float]]]):
    batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(k, v) for k, v in items), return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_calls_and_get_their_own_rows() -> None:
    predict = SlowDouble()
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(predict, pool, max_rows=1000)
        items = [("v1", [float(i), float(i) + 0.5]) for i in range(40)]
        results = run(submit_all(batcher, items))
    for (_, values), result in zip(items, results, strict=True):
        np.testing.assert_array_equal(result[:, 0], np.array(values) * 2)
    assert sum(n for _, n in predict.calls) == 80
    assert len(predict.calls) < 10  # 40 requests, a handful of calls
    assert batcher.requests == 40
    assert batcher.calls == len(predict.calls)
    assert batcher.largest > 1


def test_a_lone_request_is_answered_without_waiting_for_company() -> None:
    predict = SlowDouble(delay=0.0)
    with ThreadPoolExecutor(1) as pool:
        (result,) = run(submit_all(MicroBatcher(predict, pool), [("v1", [1.0])]))
    assert result.tolist() == [[2.0, 3.0]]
    assert predict.calls == [("v1", 1)]


def test_batches_never_mix_model_versions() -> None:
    predict = SlowDouble()
    with ThreadPoolExecutor(1) as pool:
        items = [("v1" if i % 3 else "v2", [float(i)]) for i in range(30)]
        results = run(submit_all(MicroBatcher(predict, pool), items))
    # a request answered by the other version's call would carry the other factor
    assert [r[0, 0] for r in results] == [(2 if i % 3 else 3) * i for i in range(30)]
    assert len(predict.calls) < 30


def test_max_rows_caps_a_batch() -> None:
    predict = SlowDouble()
    with ThreadPoolExecutor(1) as pool:
        run(submit_all(MicroBatcher(predict, pool, max_rows=5), [("v1", [1.0, 2.0])] * 20))
    assert max(n for _, n in predict.calls) <= 5


def test_one_bad_request_fails_alone() -> None:
    predict = SlowDouble()
    with ThreadPoolExecutor(1) as pool:
        items = [("v1", [1.0]), ("v1", [-1.0]), ("v1", [3.0])] * 5
        results = run(submit_all(MicroBatcher(predict, pool), items))
    for (_, values), result in zip(items, results, strict=True):
        if values == [-1.0]:
            assert isinstance(result, ValueError)
        else:
            assert result[0, 0] == values[0] * 2


def test_submit_before_start_is_an_error() -> None:
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(SlowDouble(), pool)
        with pytest.raises(RuntimeError, match="start"):
            run(batcher.submit("v1", [1.0]))
