"""What people ask about releases: the recent ones with their evidence, and the event log.

Read-only: nothing here starts a process or creates a ledger that does not exist yet (asking
`status` in a project that never released says so rather than leaving an empty database behind).
"""

from __future__ import annotations

import os
from typing import Any

from launchbay import procs
from launchbay.config import LaunchbayConfig
from launchbay.home import Home
from launchbay.rollout import view
from launchbay.rollout.ledger import LEDGER_ENV, Event, Ledger


def ledger_if_any(cfg: LaunchbayConfig | None, home: Home) -> Ledger | None:
    """The project's ledger, or None when there is none yet (a configured URL always counts)."""
    url = cfg.rollout.ledger_url if cfg is not None else None
    if url or os.environ.get(LEDGER_ENV) or Ledger.default_path(home).exists():
        return Ledger.for_home(home, url)
    return None


def releases(cfg: LaunchbayConfig, home: Home, limit: int = 10) -> list[dict[str, Any]]:
    """The model's newest releases, each with its latest analysis and (while live) the routes."""
    ledger = ledger_if_any(cfg, home)
    if ledger is None:
        return []
    routes = _local_routes(cfg, home)
    return [
        view.release_dict(r, ledger.last_evidence(r, "analysis"), routes if r.phase.live else None)
        for r in ledger.releases(cfg.model.name)[:limit]
    ]


def history(cfg: LaunchbayConfig | None, home: Home, model: str) -> list[Event]:
    """The model's event log, oldest first ([] when nothing was ever released)."""
    ledger = ledger_if_any(cfg, home)
    return ledger.history(model=model) if ledger is not None else []


def _local_routes(cfg: LaunchbayConfig, home: Home) -> dict[str, Any] | None:
    """The local gateway's routes if it runs (status never starts anything)."""
    if cfg.rollout.target != "local":
        return None
    from launchbay.rollout.targets.local import LocalTarget

    target = LocalTarget(cfg, home)
    rec = procs.ProcessRecord.read(target.gateway_file)
    if rec is None or not procs.alive(rec.pid):
        return None
    try:
        return target.routes().to_dict()
    except Exception:  # a gateway going away between the check and the call: no routes to show
        return None
