"""What a command following a release says when it is interrupted: where it left it, what goes on."""

from __future__ import annotations

from pathlib import Path

from rollout_fakes import world

from launchbay.rollout.drive import _left_running
from launchbay.rollout.engine import operations
from launchbay.rollout.engine.phases import Phase


def test_ctrl_c_says_where_the_release_stays_who_drives_it_and_that_demo_traffic_stopped(
    tmp_path: Path,
) -> None:
    w = world(tmp_path)
    r = w.ticks(operations.create(w.ctx, "2", "dana"), 8)
    assert r.phase in (Phase.SHADOW, Phase.CANARY)
    said = _left_running(w.ctx, r, demo=True)
    assert f"stopped following {r.name}; it goes on" in said and "driven by the controller" in said
    assert "the demo traffic stopped with this command" in said and "progress deadline (hold)" in said
    assert f"launchbay abort {r.id}" in said
    assert "demo traffic" not in _left_running(w.ctx, r, demo=False)
    operations.abort(w.ctx, str(r.id), "oncall", "done")
    assert _left_running(w.ctx, r, demo=True) == f"{r.name} is aborted."
