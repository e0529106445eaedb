"""Adaptive micro-batching: concurrent requests share model calls and get their own answers back."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from launchbay.serving.batcher import MicroBatcher


class SlowModel:
    """Scores a row as its first value; every call costs a fixed 20 ms, like a model's overhead."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, rows: list[list[Any]]) -> np.ndarray:
        time.sleep(0.02)
        with self.lock:
            self.calls.append(len(rows))
        return np.array([float(r[0]) for r in rows])


def test_concurrent_requests_share_calls_and_each_gets_its_own_scores() -> None:
    model = SlowModel()

    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(model, max_rows=64, max_wait=0.002)
        return await asyncio.gather(*(batcher.score([[i], [i + 0.5]]) for i in range(40)))

    results = asyncio.run(main())
    for i, scores in enumerate(results):
        assert list(scores) == [i, i + 0.5]
    assert sum(model.calls) == 80
    assert len(model.calls) < 10  # 40 requests, a handful of model calls


def test_a_batch_never_exceeds_max_rows() -> None:
    model = SlowModel()

    async def main() -> None:
        batcher = MicroBatcher(model, max_rows=5, max_wait=0.002)
        await asyncio.gather(*(batcher.score([[i], [i], [i]]) for i in range(10)))

    asyncio.run(main())
    assert max(model.calls) <= 5 and sum(model.calls) == 30


def test_a_lone_request_is_not_held_back_waiting_for_company() -> None:
    model = SlowModel()

    async def main() -> float:
        batcher = MicroBatcher(model, max_rows=64, max_wait=0.5)
        start = time.perf_counter()
        await batcher.score([[1.0]])
        return time.perf_counter() - start

    assert asyncio.run(main()) < 0.3  # not the 0.5 s wait: nobody else is in flight


def test_a_model_error_reaches_every_request_of_the_batch_and_the_batcher_recovers() -> None:
    calls = {"n": 0}

    def flaky(rows: list[list[Any]]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("model exploded")
        return np.zeros(len(rows))

    async def main() -> None:
        batcher = MicroBatcher(flaky, max_rows=64, max_wait=0.0)
        with pytest.raises(ValueError, match="model exploded"):
            await batcher.score([[1]])
        assert list(await batcher.score([[1], [2]])) == [0.0, 0.0]

    asyncio.run(main())
