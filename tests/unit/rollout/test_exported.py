"""The controller's own metrics: a phase change is counted once; the weight follows the step."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from rollout_fakes import world

from launchbay.rollout.engine import operations
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release
from launchbay.rollout.exported import ControllerMetrics


def test_phase_changes_are_counted_once_and_the_weight_follows(tmp_path: Path) -> None:
    w = world(tmp_path)
    m = ControllerMetrics()
    r = operations.create(w.ctx, "2", "dana")
    c = w.controller()
    previous: Release | None = None
    for _ in range(40):
        r = w.ticks(r, 1, c=c)
        m.observe(r, previous)
        previous = r
        if r.phase is Phase.AWAITING_APPROVAL:
            break
    text = generate_latest(m.registry).decode()
    assert 'launchbay_release_phase_changes_total{model="fraud-detector",phase="shadow"} 1.0' in text
    assert 'launchbay_release_canary_weight{model="fraud-detector"} 50.0' in text
