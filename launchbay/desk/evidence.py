"""Everything a release manager reads about one release, gathered from the ledger, the registry,
the gate reports and Prometheus: the same facts `status`, `history` and `audit` give, in one place.

Read-only. What never changes for a release (its gate reports, signature verdict, provenance)
is read once per process; what moves (phase, analyses, timelines) is read on every request.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launchbay.desk.timeline import Chart, RangeSource, measured, monitored, weights
from launchbay.rollout import status, view
from launchbay.rollout.engine.release import Event, Release
from launchbay.rollout.ledger.notify import Outbox
from launchbay.rollout.wiring import Wired

GATES = ("data_gate", "model_gate", "onnx_variant")
"""The reports a pipeline run writes, in the order a run makes them."""


@dataclass
class Page:
    """One release as its page shows it."""

    release: Release
    doc: dict[str, Any]
    """`view.release_dict` plus `reason` (why it is in its phase)."""
    events: list[Event]
    analyses: list[Event]
    verification: dict[str, Any] | None
    reports: dict[str, dict[str, Any]]
    charts: list[Chart]
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    took_ms: float = 0.0


def summaries(ctx: Wired, limit: int = 50) -> list[dict[str, Any]]:
    """Every model's newest releases in the ledger with why each is where it is, newest first."""
    events = ctx.ledger.history()
    rows = []
    for r in ctx.ledger.releases()[:limit]:
        reason, deciding = status.decided(r, events)
        analysis = deciding or _last(events, r.id, "analysis")
        rows.append({**view.release_dict(r, analysis, traffic(r)), "reason": reason})
    return rows


def traffic(release: Release) -> dict[str, Any] | None:
    """What the release's step asks of the routes (the controller applies it within a tick)."""
    if release.step is None:
        return None
    return dataclasses.asdict(release.plan.traffic(release.step_index))


def _verification(events: list[Event]) -> dict[str, Any] | None:
    """The signature check the controller recorded, its provenance keyed as Python names
    (`launchbay verify` prints "git commit"; the page reads `git_commit`)."""
    found = next((e.evidence for e in events if e.action in ("verified", "verify-failed")), None)
    if found is None:
        return None
    origin = {k.replace(" ", "_"): v for k, v in (found.get("provenance") or {}).items()}
    return {**found, "provenance": origin or None}


def _last(events: list[Event], release_id: int, action: str) -> dict[str, Any]:
    found = [e for e in events if e.release_id == release_id and e.action == action]
    return found[-1].evidence if found else {}


class Evidence:
    """Builds pages; caches what a release cannot change."""

    def __init__(self, ctx: Wired, source: RangeSource | None) -> None:
        self.ctx = ctx
        self.source = source
        self._reports: dict[str, dict[str, dict[str, Any]]] = {}

    def _monitored(self, release: Release) -> list[Chart]:
        """The monitor's timelines, on the page of the release of the version it watches."""
        cfg = self.ctx.cfg
        if cfg.monitor is None or cfg.rollout.target != "local":
            return []
        from launchbay.rollout.monitor.state import State

        state = State.load(self.ctx.home.root / "local" / cfg.model.name / "monitor")
        return monitored(state.timeline) if state.version == release.version else []

    def page(self, release: Release) -> Page:
        """The release's page as of now."""
        started = time.perf_counter()
        events = self.ctx.ledger.history(release_id=release.id)
        reason, deciding = status.decided(release, events)
        analyses = [e for e in events if e.action == "analysis" or "analysis" in e.evidence]
        recorded = analyses[-1].evidence if analyses else {}
        latest = deciding or status.live_analysis(self.ctx.home, release) or recorded
        if "analysis" in latest and "checks" not in latest:
            latest = latest["analysis"]
        doc = {**view.release_dict(release, latest, traffic(release)), "reason": reason}
        verification = _verification(events)
        run_id = ((verification or {}).get("provenance") or {}).get("training_run")
        reports = self.reports(run_id) if run_id else {}
        slo = self.ctx.cfg.rollout.slo
        charts = [
            *measured(
                self.source, release, events, self._templates(), (slo.p95_latency_ms, slo.max_error_rate)
            ),
            weights(release, events, events[-1].at if events and not release.phase.live else time.time()),
        ]
        charts += self._monitored(release)
        deliveries = Outbox(self.ctx.ledger, self.ctx.cfg.notifications).attempts(release.id)
        page = Page(release, doc, events, analyses, verification, reports, charts, deliveries)
        page.took_ms = (time.perf_counter() - started) * 1000
        return page

    def _templates(self) -> Any:
        from launchbay.rollout.metrics.queries import templates_for

        cfg = self.ctx.cfg
        return templates_for(
            cfg.rollout.target, cfg.rollout.queries, cfg.model.name, cfg.kubernetes.namespace
        )

    def reports(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The gate reports of a pipeline run: the state directory's copy, else the MLflow run's."""
        if run_id in self._reports:
            return self._reports[run_id]
        found: dict[str, dict[str, Any]] = {}
        local = self.ctx.home.reports / run_id
        for name in GATES:
            path = local / f"{name}.json"
            if path.is_file():
                found[name] = json.loads(path.read_text())
        if not found:
            found = self._from_mlflow(run_id)
        self._reports[run_id] = found
        return found

    def _from_mlflow(self, run_id: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        client = self.ctx.registry.client  # type: ignore[attr-defined]
        with tempfile.TemporaryDirectory(prefix="launchbay-reports-") as tmp:
            for name in GATES:
                try:
                    path = client.download_artifacts(run_id, f"reports/{name}.json", tmp)
                except Exception:  # not in this run (an older pipeline), or the store is away
                    continue
                found[name] = json.loads(Path(path).read_text())
        return found
