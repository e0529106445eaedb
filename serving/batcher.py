"""Adaptive micro-batching: concurrent requests share one model call.

A model call here costs about the same for 1 row as for 64 (its time is fixed overhead), so under
load the service should score many requests at once. The batcher collects rows while a model call
is running; when the model is free it scores everything waiting, up to `max_rows`. It waits a
little (`max_wait`) for company only when other requests are already in flight, so a lone request
is never delayed. Model calls run on one worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class _Item:
    rows: list[list[Any]]
    future: asyncio.Future[np.ndarray] = field(repr=False)


class MicroBatcher:
    """Queue rows from many requests and score them together with `fn(rows) -> scores`."""

    def __init__(self, fn: Callable[[list[list[Any]]], np.ndarray], max_rows: int, max_wait: float) -> None:
        self.fn = fn
        self.max_rows = max_rows
        self.max_wait = max_wait
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._carry: _Item | None = None
        self._inflight = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.rows = 0

    async def score(self, rows: list[list[Any]]) -> np.ndarray:
        """Scores for `rows` (at most `max_rows` of them), computed in a shared model call."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._inflight += 1
        try:
            await self._queue.put(_Item(rows, future))
            return await future
        finally:
            self._inflight -= 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = self._carry or await self._queue.get()
            self._carry = None
            batch, n = [first], len(first.rows)
            deadline = loop.time() + self.max_wait
            while n < self.max_rows:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    # Wait for company only if someone else is already on the way.
                    if self._inflight <= len(batch) or loop.time() >= deadline:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
                    except TimeoutError:
                        break
                if n + len(item.rows) > self.max_rows:
                    self._carry = item
                    break
                batch.append(item)
                n += len(item.rows)
            rows = [r for item in batch for r in item.rows]
            try:
                scores = await loop.run_in_executor(self._pool, self.fn, rows)
            except Exception as exc:  # the model failed: every request of the batch learns why
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.batches += 1
            self.rows += len(rows)
            start = 0
            for item in batch:
                if not item.future.done():
                    item.future.set_result(scores[start : start + len(item.rows)])
                start += len(item.rows)
