"""Rows seen before: shadow compares each distinct row once.

Bounds on a disagreement rate assume independent rows. Real traffic repeats (the same customer
scored again, a client retrying, a demo walking one list): 117 mirrored requests may hold 32
distinct rows, and the same disagreeing row counted four times looks like four pieces of evidence.
The gateway therefore compares a row once per `window` seconds -- the analysis window
(`rollout.analysis_window`), so that no window counts a row twice while a row seen again in a
later window is evidence there (a shadow fed a few hundred rows over and over still decides); a
new shadow phase starts afresh. Repeats are counted on their own
(`launchbay_shadow_repeated_rows_total`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

WINDOW = 10.0
"""Seconds a row is remembered by default: the default analysis window (the gateway is told its own)."""
CAPACITY = 100_000
"""Rows remembered at most (the oldest are forgotten first): ~10 MB."""


def rows_of(body: bytes) -> list[Any] | None:
    """The rows of a prediction request (`{"row": {...}}` or `{"rows": [...]}`), None if unreadable."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if "rows" in doc and isinstance(doc["rows"], list):
        return list(doc["rows"])
    if "row" in doc:
        return [doc["row"]]
    return None


def key(pair: tuple[str, str], row: Any) -> bytes:
    """A row's identity for one (stable, candidate) pair: a digest of its canonical JSON."""
    text = json.dumps([pair, row], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).digest()


class Seen:
    """Which rows were compared recently."""

    def __init__(
        self, window: float = WINDOW, capacity: int = CAPACITY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window, self.capacity, self.clock = window, capacity, clock
        self._at: OrderedDict[bytes, float] = OrderedDict()

    def first(self, k: bytes) -> bool:
        """True the first time `k` is seen within the window (and it is remembered from now)."""
        now = self.clock()
        while self._at:
            at = next(iter(self._at.values()))
            if now - at < self.window and len(self._at) < self.capacity:
                break
            self._at.popitem(last=False)
        if k in self._at:
            return False
        self._at[k] = now
        return True

    def __len__(self) -> int:
        return len(self._at)
