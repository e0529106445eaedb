"""What the monitor keeps between passes: its state file and the window of captured rows."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from launchbay.checks.live_drift import Detector
from launchbay.checks.live_performance import LossDetector
from launchbay.config.monitor import MonitorSection
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


def log10(x: float | None) -> float:
    """log10 of a (positive) statistic, rounded; 0 for none."""
    return round(math.log10(x), 3) if x and x > 0 else 0.0


def summary(s: State, m: MonitorSection) -> dict[str, Any]:
    """The monitor's state for people and `--json`."""
    drift = Detector.from_dict(s.drift) if s.drift else None
    loss = LossDetector.from_dict(s.loss) if s.loss else None
    last = s.timeline[-1] if s.timeline else None
    return {
        "version": s.version,
        "monitored": drift is not None,
        "unmonitored": s.unmonitored,
        "updated_at": s.updated_at or None,
        "rows": s.rows,
        "repeated": s.repeated,
        "lost": s.lost,
        "labels": s.labelled,
        "false_alarm_every_days": round(m.false_alarm_every / 86400, 3),
        "drift": None
        if drift is None
        else {
            "evidence_log10": last["drift"] if last else 0.0,
            "alarm_log10": round(math.log10(drift.threshold), 3),
            "by_feature_log10": drift.evidence(),
        },
        "performance": None
        if loss is None
        else {
            "labelled": loss.labelled,
            "losses": loss.losses,
            "live_rate": round(loss.losses / loss.labelled, 4) if loss.labelled else None,
            "limit": round(loss.limit, 4),
            "evidence_log10": log10(loss.statistic()),
            "alarm_log10": round(math.log10(loss.threshold), 3),
        },
        "alarms": [{k: a[k] for k in ("kind", "at", "reason")} for a in s.alarms],
        "retrain": s.retrain,
        "waiting_for": s.waiting or s.not_capturing,
        "timeline": s.timeline[-200:],
    }
