"""Steady client traffic through the gateway, recording which version answered each request.

On one machine there are no users: the demo (`launchbay run --traffic 40`), the e2e tests and the
benchmarks play them, sending real rows of the data set. Every answer is recorded with the time,
the status and the `X-Launchbay-Version` header, so what clients saw can be counted afterwards.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from launchbay.rollout.local.gateway import RETRIED_HEADER, VERSION_HEADER


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it."""

    at: float
    status: int
    version: str
    retried_from: str = ""
    """The canary version that failed this request before stable answered it (gateway retry)."""
    latency: float = 0.0
    """Seconds from sending the request to its answer (or to the failure)."""


@dataclass
class Clients:
    """Sends `rate` requests per second (one row each) to `url` + `/predict` from a few threads."""

    url: str
    rows: list[dict[str, Any]]
    rate: float = 40.0
    threads: int = 4
    timeout: float = 10.0
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Clients:
        """Start sending (returns at once)."""
        period = self.threads / self.rate
        for i in range(self.threads):
            t = threading.Thread(target=self._send, args=(i, period), daemon=True, name=f"traffic-{i}")
            t.start()
            self._workers.append(t)
        return self

    def stop(self) -> None:
        """Stop sending and wait for the last answers."""
        self._stop.set()
        for t in self._workers:
            t.join(timeout=self.timeout + 1)

    def __enter__(self) -> Clients:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _send(self, index: int, period: float) -> None:
        # Each thread its own share of the rows: together they send every row once before any
        # is sent again (a shadow comparison counts repeated rows once, so repeats are wasted).
        rows = itertools.cycle(self.rows[index :: self.threads] or self.rows)
        # Spread the threads over one period so that requests are evenly spaced.
        next_at = time.monotonic() + period * index / self.threads
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                next_at += period
                body = json.dumps({"row": next(rows)})
                sent = time.monotonic()
                try:
                    r = client.post(
                        self.url + "/predict", content=body, headers={"Content-Type": "application/json"}
                    )
                    answer = Answer(
                        time.time(),
                        r.status_code,
                        r.headers.get(VERSION_HEADER, ""),
                        r.headers.get(RETRIED_HEADER, ""),
                        time.monotonic() - sent,
                    )
                except httpx.HTTPError:
                    answer = Answer(time.time(), 0, "", latency=time.monotonic() - sent)
                with self._lock:
                    self.answers.append(answer)

    def snapshot(self) -> list[Answer]:
        """The answers so far."""
        with self._lock:
            return list(self.answers)

    def summary(self, since: float = 0.0) -> dict[str, Any]:
        """Requests, failures (non-2xx or no answer) and answers per version."""
        answers = [a for a in self.snapshot() if a.at >= since]
        failed = [a for a in answers if not 200 <= a.status < 300]
        return {
            "requests": len(answers),
            "failed": len(failed),
            "by_version": dict(Counter(a.version for a in answers if 200 <= a.status < 300)),
            "failed_by_version": dict(Counter(a.version or "?" for a in failed)),
            "retried_from": dict(Counter(a.retried_from for a in answers if a.retried_from)),
        }


def sample_rows(path: str, features: list[str], n: int = 500, seed: int = 0) -> list[dict[str, Any]]:
    """`n` rows of a CSV/Parquet file as JSON-ready dicts of the features."""
    from launchbay.checks.data_gate import read_frame

    frame = read_frame(path)
    frame = frame.sample(n=min(n, len(frame)), random_state=seed)[features]
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return rows
