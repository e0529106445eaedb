"""A retrain on the captured window: the labelled rows (plus the training data), through every gate.

The monitor writes the rows to a Parquet file and starts `launchbay run --data FILE` on it, as a
person would: the data gate, training, the gate against the champion, signing, packaging, then
the rollout -- shadow, canary, and approval by a release manager (the config must require one:
`monitor.retrain` refuses to load otherwise). Nothing about it is special; it never promotes itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from launchbay import procs
from launchbay.config import LaunchbayConfig
from launchbay.home import HOME_ENV, Home
from launchbay.rollout.monitor.state import window

ACTOR = "launchbay-monitor"


@dataclass(frozen=True)
class Window:
    """The labelled captured rows, ready to train on."""

    rows: list[dict[str, Any]]
    """Features and the target column."""
    captured: int
    """Rows captured in the window, labelled or not."""


def labelled_window(cfg: LaunchbayConfig, directory: Path, labels: dict[str, Any]) -> Window:
    """The captured rows with a label (the latest one of their request id), once each, the label
    under `data.target` (what training reads; `feedback.label_column` names it in label files only)."""
    features = list(cfg.data.features)
    column = cfg.data.target
    rows: dict[str, dict[str, Any]] = {}
    captured = 0
    for entry in window(directory):
        captured += 1
        row, rid = entry.get("row"), str(entry.get("id"))
        if not isinstance(row, dict) or rid not in labels or not all(f in row for f in features):
            continue
        ids = {cfg.data.id_column: rid} if cfg.data.id_column else {}  # unique: the request's id
        rows[rid] = {**ids, **{f: row[f] for f in features}, column: labels[rid]}
    return Window(list(rows.values()), captured)


def write_data(cfg: LaunchbayConfig, win: Window, path: Path) -> tuple[str, Path]:
    """The training file -- the window's rows, after the configured training data when asked --
    and the drift reference beside it (the window's rows: after a drift, live traffic is what
    normal looks like now). Returns the training file's digest and the reference's path."""
    import pandas as pd

    from launchbay.checks.data_gate import read_frame

    window_rows = pd.DataFrame(win.rows)
    frame = window_rows
    assert cfg.monitor is not None
    if cfg.monitor.retrain.include_training_data:
        original = read_frame(cfg.resolve_path(cfg.data.path))
        frame = pd.concat([original[list(frame.columns)], frame], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    reference = path.with_name(path.stem + "-reference.parquet")
    window_rows[list(cfg.data.features)].to_parquet(reference, index=False)
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(), reference


def needed(cfg: LaunchbayConfig) -> int:
    """Labelled rows a retrain needs: `min_labelled`, and the data gate's `min_rows` when the
    window is trained on alone."""
    assert cfg.monitor is not None
    r = cfg.monitor.retrain
    return r.min_labelled if r.include_training_data else max(r.min_labelled, cfg.data.min_rows)


class Starter(Protocol):
    """Starts a retrain on a written window, and says how it ended."""

    def start(self, cfg: LaunchbayConfig, home: Home, data: Path, reference: Path) -> dict[str, Any]:
        """Start it; what to follow it by (kept in the monitor's state)."""
        ...

    def outcome(self, run: dict[str, Any]) -> dict[str, Any] | None:
        """How it ended: succeeded, version, release, phase, stopped_at or reason (None: it runs)."""
        ...


class LocalStarter:
    """`launchbay run` on this machine (the local target)."""

    def start(self, cfg: LaunchbayConfig, home: Home, data: Path, reference: Path) -> dict[str, Any]:
        return start(cfg, home, data, reference)

    def outcome(self, run: dict[str, Any]) -> dict[str, Any] | None:
        return outcome(run)


def start(cfg: LaunchbayConfig, home: Home, data: Path, reference: Path) -> dict[str, Any]:
    """Start `launchbay run` on `data` in the background; what to follow it by."""
    out, log = data.with_suffix(".json"), data.with_suffix(".log")
    # launchbay itself, for the user who runs the monitor: their whole environment (signing key,
    # tracking server), as when they type the command.
    env = dict(os.environ) | {HOME_ENV: str(home.root)}
    argv = [
        sys.executable,
        "-m",
        "launchbay",
        "run",
        "--config",
        str(cfg.source),
        "--data",
        str(data),
        "--reference",
        str(reference),
        "--json",
        "--as",
        ACTOR,
    ]
    with out.open("w") as stdout, log.open("w") as stderr:
        p = subprocess.Popen(
            argv,
            cwd=cfg.base_dir,
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return {
        "pid": p.pid,
        "created": procs.created(p.pid),
        "started_at": time.time(),
        "data": str(data),
        "out": str(out),
        "log": str(log),
    }


def outcome(run: dict[str, Any]) -> dict[str, Any] | None:
    """How a started retrain ended (None: it still runs)."""
    pid = int(run["pid"])
    if procs.alive(pid, run.get("created")):
        return None
    with contextlib.suppress(ChildProcessError):  # ours when this process started it: reap it
        os.waitpid(pid, os.WNOHANG)
    try:
        doc = json.loads(Path(run["out"]).read_text())
    except (OSError, ValueError):
        return {"succeeded": False, "reason": f"it left no result; see {run['log']}"}
    release = doc.get("release") or {}
    failed = next(
        (n for n, s in (doc.get("steps") or {}).items() if str(s.get("phase")).lower() == "failed"), None
    )
    return {
        "succeeded": bool(doc.get("succeeded")) and release.get("phase") not in ("rolled-back", "failed"),
        "version": doc.get("version"),
        "release": release.get("id"),
        "phase": release.get("phase"),
        "stopped_at": failed,
    }
