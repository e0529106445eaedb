"""What people ask about releases: the recent ones with their evidence, and the event log.

Read-only: nothing here starts a process or creates a ledger that does not exist yet (asking
`status` in a project that never released says so rather than leaving an empty database behind).
"""

from __future__ import annotations

import os
import time
from typing import Any

from launchbay.config import LaunchbayConfig
from launchbay.home import Home
from launchbay.rollout import daemon, view
from launchbay.rollout.engine.release import Event, Release
from launchbay.rollout.ledger.store import LEDGER_ENV, SqlLedger


def ledger_if_any(cfg: LaunchbayConfig | None, home: Home) -> SqlLedger | None:
    """The project's ledger, or None when there is none yet (a configured URL always counts)."""
    url = cfg.rollout.ledger_url if cfg is not None else None
    if url or os.environ.get(LEDGER_ENV) or SqlLedger.default_path(home).exists():
        return SqlLedger.for_config(cfg, home)
    return None


def frozen(cfg: LaunchbayConfig, home: Home) -> dict[str, Any] | None:
    """The change freeze in force now (a window of the config, or an emergency one on record)."""
    from launchbay.rollout.engine import freeze

    ledger = ledger_if_any(cfg, home)
    if ledger is not None:
        found = freeze.active(cfg, ledger, cfg.model.name)
    else:
        found = freeze.scheduled(cfg, time.time())
    return found.to_dict() if found is not None else None


def monitored(cfg: LaunchbayConfig, home: Home) -> dict[str, Any] | None:
    """What the production monitor sees now (None: the model is not monitored here)."""
    if cfg.monitor is None or cfg.rollout.target != "local":
        return None
    from launchbay.rollout.monitor.state import State, summary

    doc = summary(State.load(home.root / "local" / cfg.model.name / "monitor"), cfg.monitor)
    return {k: v for k, v in doc.items() if k != "timeline"}


def releases(cfg: LaunchbayConfig, home: Home, limit: int = 10) -> list[dict[str, Any]]:
    """The model's newest releases, each with its latest analysis and (while live) the routes."""
    ledger = ledger_if_any(cfg, home)
    if ledger is None:
        return []
    routes = _local_routes(cfg, home)
    events = ledger.history(model=cfg.model.name)
    controller = daemon.status(home, cfg.model.name)
    shown = []
    for r in ledger.releases(cfg.model.name)[:limit]:
        reason, analysis = decided(r, events)
        now = live_analysis(home, r, controller)
        evidence = analysis or now or ledger.last_evidence(r, "analysis")
        doc = view.release_dict(r, evidence, routes if r.phase.live else None)
        shown.append({**doc, "reason": reason})
    return shown


def live_analysis(
    home: Home, release: Release, controller: daemon.ControllerRecord | None = None
) -> dict[str, Any] | None:
    """A live release's newest analysis from this machine's controller -- what it waits for now,
    and how long at the rate it sees (the ledger keeps one per step and verdict) -- or None (ended,
    another machine's controller, none running). `controller`: its record, if already read."""
    if not release.phase.live:
        return None
    rec = controller if controller is not None else daemon.status(home, release.model)
    if rec is None or not rec.running:
        return None
    return rec.results.get(str(release.id))


def decided(release: Release, events: list[Event]) -> tuple[str, dict[str, Any] | None]:
    """Why a release is in its phase (the reason of the event that put it there) and, for an
    ended one, the analysis that decided it -- the FAIL that rolled it back, not the last PASS."""
    last = view.moved_in(release, events)
    if last is None:
        return "", None
    analysis = last.evidence.get("analysis")
    if release.phase.live or not isinstance(analysis, dict) or not analysis.get("checks"):
        return last.reason, None
    return last.reason, analysis


def history(cfg: LaunchbayConfig | None, home: Home, model: str) -> list[Event]:
    """The model's event log, oldest first ([] when nothing was ever released)."""
    ledger = ledger_if_any(cfg, home)
    return ledger.history(model=model) if ledger is not None else []


def gateway(cfg: LaunchbayConfig, home: Home) -> dict[str, Any] | None:
    """The local gateway as its supervisor last recorded it: up, or down and since when.

    None for cluster targets, and before the local gateway was ever started.
    """
    if cfg.rollout.target != "local":
        return None
    from launchbay.rollout.local import records
    from launchbay.rollout.local.supervisor import RECORD, GatewayRecord

    rec = GatewayRecord.read(records.directory(home.root, cfg.model.name) / RECORD)
    if rec is None:
        return None
    up = rec.serving
    if up:
        down_since = None
    elif rec.running:
        down_since = rec.down_since or time.time()  # a worker is being replaced
    else:
        down_since = rec.heartbeat_at or rec.started_at  # the supervisor's last sign of life
    return {
        "url": rec.url,
        "up": up,
        "down_since": down_since,
        "pid": rec.pid,
        "supervisor_pid": rec.supervisor_pid,
        "restarts": rec.restarts,
        "last_exit": rec.last_exit,
    }


def controller(cfg: LaunchbayConfig, home: Home, restart: bool = True) -> dict[str, Any] | None:
    """The model's controller as it last recorded itself: running or not, its heartbeat, whether
    the world matches the ledger (or what still differs), a ledger it cannot write.

    On the local target a controller found gone is started again (`restart`) -- unless
    `launchbay down` stopped everything on purpose. None: nothing was ever released here.
    """
    from launchbay.rollout import daemon

    model = cfg.model.name
    rec = daemon.status(home, model)
    if rec is None and cfg.rollout.target != "local":
        return None
    if rec is None and not (home.root / "local" / model).exists():
        return None
    stopped = daemon.stopped_on_purpose(home, model)
    restarted = False
    if restart and stopped is None and cfg.rollout.target == "local" and (rec is None or not rec.running):
        rec = daemon.ensure(cfg, home)
        restarted = True
    if rec is None:
        return {"running": False, "stopped_on_purpose": stopped, "restarted": restarted}
    return {
        "running": rec.running,
        "pid": rec.pid,
        "stuck": rec.stuck,
        "restarted": restarted,
        "stopped_on_purpose": stopped,
        "heartbeat_age": round(time.time() - rec.heartbeat_at, 1) if rec.heartbeat_at else None,
        "ledger_error": rec.ledger_error,
        "ledger_error_since": rec.ledger_error_since,
        "error": rec.error,
        "world": rec.world,
    }


def _local_routes(cfg: LaunchbayConfig, home: Home) -> dict[str, Any] | None:
    """The local gateway's routes if it serves (status never starts anything)."""
    info = gateway(cfg, home)
    if info is None or not info["up"]:
        return None
    from launchbay.rollout.local.target import LocalTarget

    try:
        return LocalTarget(cfg, home).routes().to_dict()
    except Exception:  # a gateway going away between the check and the call: no routes to show
        return None
