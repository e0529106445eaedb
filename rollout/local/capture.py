"""A bounded, opt-in sample of live requests at the local gateway, for replay before shadow.

Only with `rollout.preflight.replay`: a uniform sample (reservoir) of the bodies of users' POST
requests -- pinned testers' and mirrored copies are not users' -- with the configured fields
dropped or replaced by a hash, and the busiest second seen (the peak the replay multiplies).
Kept in memory and written atomically to `capture.json` beside the routes every few seconds, so
the controller (another process) reads what the gateway saw; never more than `size` bodies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from launchbay.files import write_private
from launchbay.serving.request_sample import Capture, Captured, Sample

CAPTURE_FILE = "capture.json"


@dataclass
class Recorder:
    """The gateway's sample, flushed to `path` for the controller (another process) to read."""

    capture: Capture
    path: Path
    sample: Sample = field(init=False)

    def __post_init__(self) -> None:
        self.sample = Sample(self.capture)
        self._written = -1

    def add(self, body: bytes, now: float | None = None) -> None:
        """Count one user request and maybe keep its (cleaned) body."""
        self.sample.add(body, now)

    def flush(self) -> None:
        """Write the sample if it changed (atomically: a reader never sees half of it)."""
        if self.sample.seen != self._written:
            write_private(self.path, json.dumps(self.sample.to_dict()))
            self._written = self.sample.seen


def read(path: Path) -> Captured | None:
    """The sample at `path`, None when there is none (nothing captured yet, or unreadable)."""
    try:
        doc = json.loads(path.read_text())
        bodies = [str(b) for b in doc["bodies"]]
        return Captured(bodies, int(doc["peak_rps"]), int(doc["seen"])) if bodies else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
