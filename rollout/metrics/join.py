"""Shadow in a cluster, row by row: stable's and the candidate's answer logs joined on request id.

Every pod of each version keeps its own log (`launchbay.serving.answer_log`); each pass pulls
what is new from every pod (a cursor per pod), pairs stable's answer with the candidate's by the
request id the gateway gave the request and its mirror, and compares each pair of rows as the
local gateway does (`compare`): predicted class, score difference, a regressor's relative
difference. A row compared before within the window counts once. Answers waiting for their other
half are dropped after `hold` seconds (the mirror was dropped, or the request had no twin).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from launchbay.rollout.metrics.base import Measurement, ShadowStats
from launchbay.rollout.metrics.compare import disagree, row_shift

PATH = "/launchbay/answers"
Endpoints = Callable[[str], list[str]]
"""Version -> the base URLs of its pods (the cluster target's EndpointSlices)."""


@dataclass
class _Row:
    at: float
    digest: str
    disagreed: bool
    shift: float | None


@dataclass
class ShadowJoin:
    """Pulls and joins the two versions' answer logs; `stats` is the shadow comparison."""

    endpoints: Endpoints
    hold: float = 60.0
    timeout: float = 2.0
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=2.0))
    _cursor: dict[str, int] = field(default_factory=dict)
    _waiting: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    _rows: deque[_Row] = field(default_factory=deque)
    lost: int = 0
    """Entries a pod's ring dropped before they were read (the pull fell behind)."""
    errors: list[str] = field(default_factory=list)
    reachable: bool = False
    """Whether a pod's answer log answered in the last pull (else: compare by population)."""

    def pull(self, stable: str, candidate: str, now: float | None = None) -> None:
        """Read what is new in every pod of both versions and join what pairs up."""
        now = time.time() if now is None else now
        self.errors, self.reachable = [], False
        for version in (stable, candidate):
            try:
                urls = self.endpoints(version)
            except Exception as exc:  # the API server away: this pass joins nothing new
                self.errors.append(f"endpoints of version {version}: {type(exc).__name__}: {exc}")
                continue
            for url in urls:
                self._read(version, url)
        self._join(stable, candidate, now)

    def _read(self, version: str, url: str) -> None:
        key = f"{version} {url}"
        since = self._cursor.get(key, 0)
        try:
            answer = self.client.get(url.rstrip("/") + PATH, params={"since": since}, timeout=self.timeout)
            answer.raise_for_status()
            doc = answer.json()
            entries = list(doc["entries"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self.errors.append(f"{url}: {type(exc).__name__}: {exc}")
            return
        self.reachable = True
        if since and int(doc.get("oldest", 0)) > since + 1:
            self.lost += int(doc["oldest"]) - since - 1
        self._cursor[key] = int(doc.get("next", since))
        mine = self._waiting.setdefault(version, {})
        for e in entries:
            mine[str(e["id"])] = e

    def _join(self, stable: str, candidate: str, now: float) -> None:
        ours, theirs = self._waiting.setdefault(stable, {}), self._waiting.setdefault(candidate, {})
        for rid in [r for r in ours if r in theirs]:
            s, c = ours.pop(rid), theirs.pop(rid)
            digests = s.get("rows") or [""] * len(s["predictions"])
            for digest, a, b in zip(digests, s["predictions"], c["predictions"], strict=False):
                self._rows.append(_Row(now, str(digest), disagree(a, b), row_shift(a, b)))
        for waiting in (ours, theirs):
            for rid in [r for r, e in waiting.items() if now - float(e.get("at", now)) > self.hold]:
                del waiting[rid]

    def stats(self, window: float, now: float | None = None) -> ShadowStats:
        """The comparison over the last `window` seconds (each distinct row once)."""
        now = time.time() if now is None else now
        while self._rows and now - self._rows[0].at > max(window, self.hold):
            self._rows.popleft()
        seen: set[str] = set()
        compared = disagreed = 0
        shifts: list[float] = []
        for row in self._rows:
            if now - row.at > window:
                continue
            if row.digest:
                if row.digest in seen:
                    continue
                seen.add(row.digest)
            compared += 1
            disagreed += row.disagreed
            if row.shift is not None:
                shifts.append(row.shift)
        where = "answer logs joined on request id"
        if self.errors and not compared:
            failed = Measurement.failed(where, "; ".join(self.errors))
            return ShadowStats(compared=failed, disagreement=failed, score_shift=failed)
        return ShadowStats(
            compared=Measurement(float(compared), None, where),
            disagreement=Measurement(disagreed / compared if compared else None, None, where),
            score_shift=Measurement(sum(shifts) / len(shifts) if shifts else None, None, where),
        )
