"""What the monitor keeps between passes: its state file and the window of captured rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from launchbay.files import write_private

STATE_FILE = "state.json"
WINDOW_DIR = "window"
TIMELINE = 2000
"""Points of the timeline kept (a point per pass: 33 hours at one a minute)."""
SEEN = 50_000
"""Row digests remembered to count repeated rows once."""


@dataclass
class State:
    """The monitor's state (one file, rewritten after each pass)."""

    version: str | None = None
    """The champion being watched (its reference is in force)."""
    unmonitored: str | None = None
    """Why the champion is not watched now (no reference recorded for it, ...)."""
    drift: dict[str, Any] | None = None
    loss: dict[str, Any] | None = None
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per server URL: the answer log's instance and the last entry read."""
    feedback_offset: int = 0
    """Bytes of the feedback file already read (local target)."""
    label_files: list[str] = field(default_factory=list)
    """Label files already read (a cluster's store)."""
    pending: dict[str, Any] = field(default_factory=dict)
    """Request id -> the champion's answer, awaiting its label (the newest `capture.size`)."""
    seen: list[str] = field(default_factory=list)
    rows: int = 0
    repeated: int = 0
    lost: int = 0
    """Answers that left a server's ring before the monitor read them."""
    labelled: int = 0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    """The alarms raised while watching this version (kind, at, statistic, evidence)."""
    retrain: dict[str, Any] | None = None
    """The retrain started last: pid, data, when; and how it ended."""
    waiting: str | None = None
    """What the monitor waits for before it can act (labels, a cooldown, a reference)."""
    not_capturing: str | None = None
    """Why the champion's answers cannot be read (no server runs, a server that keeps none)."""
    updated_at: float = 0.0

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.timeline = self.timeline[-TIMELINE:]
        self.seen = self.seen[-SEEN:]
        write_private(directory / STATE_FILE, json.dumps(asdict(self), separators=(",", ":")))

    @classmethod
    def load(cls, directory: Path) -> State:
        """The saved state (a fresh one when there is none or it cannot be read)."""
        try:
            doc = json.loads((directory / STATE_FILE).read_text())
            return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return cls()


def append_window(directory: Path, entries: list[dict[str, Any]], now: float | None = None) -> None:
    """Keep captured rows (id, at, version, row, answer) in the hour's file."""
    if not entries:
        return
    hour = datetime.fromtimestamp(now or time.time(), UTC).strftime("%Y%m%d%H")
    where = directory / WINDOW_DIR
    where.mkdir(parents=True, exist_ok=True)
    with (where / f"{hour}.jsonl").open("a") as f:
        f.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries))


def prune_window(directory: Path, keep_s: float, now: float | None = None) -> None:
    """Drop the hours older than the window."""
    cutoff = datetime.fromtimestamp((now or time.time()) - keep_s, UTC).strftime("%Y%m%d%H")
    for f in (directory / WINDOW_DIR).glob("*.jsonl"):
        if f.stem < cutoff:
            f.unlink(missing_ok=True)


def window(directory: Path) -> Iterator[dict[str, Any]]:
    """Every captured row still in the window, oldest first (torn lines skipped)."""
    for f in sorted((directory / WINDOW_DIR).glob("*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue
