"""A bounded, opt-in sample of live requests at the local gateway, for replay before shadow.

Only with `rollout.preflight.replay`: a uniform sample (reservoir) of the bodies of users' POST
requests -- pinned testers' and mirrored copies are not users' -- with the configured fields
dropped or replaced by a hash, and the busiest second seen (the peak the replay multiplies).
Kept in memory and written atomically to `capture.json` beside the routes every few seconds, so
the controller (another process) reads what the gateway saw; never more than `size` bodies.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from launchbay.files import write_private

CAPTURE_FILE = "capture.json"


@dataclass(frozen=True)
class Capture:
    """What the gateway keeps (passed to its worker as JSON; size 0: nothing)."""

    size: int = 0
    drop: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()

    def to_json(self) -> str:
        """The form the supervisor hands its worker."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Capture:
        """Parse `to_json`'s form ('' is no capture)."""
        if not text:
            return cls()
        doc = json.loads(text)
        return cls(int(doc.get("size", 0)), tuple(doc.get("drop", ())), tuple(doc.get("hash", ())))


@dataclass
class Recorder:
    """The reservoir and the peak rate, flushed to `path`."""

    capture: Capture
    path: Path
    seen: int = 0
    peak_rps: int = 0
    bodies: list[str] = field(default_factory=list)
    _second: int = 0
    _this_second: int = 0
    _dirty: bool = False

    def add(self, body: bytes, now: float | None = None) -> None:
        """Count one user request and maybe keep its (cleaned) body."""
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._second, self._this_second = second, 0
        self._this_second += 1
        self.peak_rps = max(self.peak_rps, self._this_second)
        self.seen += 1
        self._dirty = True
        # Algorithm R: every request seen so far is in the sample with the same chance.
        slot = len(self.bodies) if len(self.bodies) < self.capture.size else random.randrange(self.seen)
        if slot >= self.capture.size:
            return
        cleaned = self._clean(body)
        if cleaned is None:
            return
        if slot == len(self.bodies):
            self.bodies.append(cleaned)
        else:
            self.bodies[slot] = cleaned

    def _clean(self, body: bytes) -> str | None:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(doc, dict):
            return None
        for key in ("row", "rows"):
            if isinstance(doc.get(key), dict):
                doc[key] = self._fields(doc[key])
            elif isinstance(doc.get(key), list):
                doc[key] = [self._fields(r) if isinstance(r, dict) else r for r in doc[key]]
        return json.dumps(doc, separators=(",", ":"))

    def _fields(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if k not in self.capture.drop}
        for k in self.capture.hash:
            if k in out:
                out[k] = "sha256:" + hashlib.sha256(json.dumps(out[k]).encode()).hexdigest()[:16]
        return out

    def flush(self) -> None:
        """Write the sample if it changed (atomically: a reader never sees half of it)."""
        if self._dirty:
            doc = {"seen": self.seen, "peak_rps": self.peak_rps, "bodies": self.bodies, "at": time.time()}
            write_private(self.path, json.dumps(doc))
            self._dirty = False


@dataclass(frozen=True)
class Captured:
    """What the controller reads back."""

    bodies: list[str]
    peak_rps: int
    seen: int


def read(path: Path) -> Captured | None:
    """The sample at `path`, None when there is none (nothing captured yet, or unreadable)."""
    try:
        doc = json.loads(path.read_text())
        bodies = [str(b) for b in doc["bodies"]]
        return Captured(bodies, int(doc["peak_rps"]), int(doc["seen"])) if bodies else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
