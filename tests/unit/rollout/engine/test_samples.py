"""The controller keeps what it measured: one sample per analysis, in the ledger with the event
that ends the step or the release (or on its own every FLUSH_EVERY), so an ended release's
timelines do not depend on Prometheus' retention."""

from __future__ import annotations

from pathlib import Path

from rollout_fakes import world

from launchbay.rollout.engine import operations
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.samples import FLUSH_EVERY


def _samples(events: list) -> list[dict]:  # type: ignore[type-arg]
    return [s for e in events for s in e.evidence.get("samples", [])]


def test_every_analysis_leaves_a_sample_in_the_ledger_by_the_time_its_step_ends(tmp_path: Path) -> None:
    w = world(tmp_path)
    c = w.controller()
    r = w.ticks(operations.create(w.ctx, "2", "dana"), 40, c=c)
    assert r.phase is Phase.AWAITING_APPROVAL
    events = w.ledger.history(release_id=r.id)
    recorded = _samples(events)
    step_moves = [e for e in events if e.action == "step" and e.evidence.get("samples")]
    assert len(step_moves) >= 2  # the samples travel with the events that end each step
    shadow = [s for s in recorded if s["role"] == "shadow"]
    canary = [s for s in recorded if s["role"] == "primary"]
    assert shadow and canary
    assert {"c_p95", "c_err", "disagreement", "score_shift"} <= set(shadow[-1])
    assert canary[-1]["c_p95"] == 8.0 and canary[-1]["s_p95"] == 8.0  # the fakes' values, as judged
    assert [s["t"] for s in recorded] == sorted(s["t"] for s in recorded)


def test_a_long_wait_is_recorded_in_chunks_and_what_is_held_is_written_when_a_person_ends_it(
    tmp_path: Path,
) -> None:
    w = world(tmp_path)
    c = w.controller()
    r = w.ticks(operations.create(w.ctx, "2", "dana"), 40, c=c)
    before = len(_samples(w.ledger.history(release_id=r.id)))
    w.ticks(r, FLUSH_EVERY + 5, c=c)  # analysis goes on while it waits for approval
    chunks = [e for e in w.ledger.history(release_id=r.id) if e.action == "measurements"]
    assert len(chunks) == 1 and len(chunks[0].evidence["samples"]) == FLUSH_EVERY
    operations.abort(w.ctx, str(r.id), "oncall", "enough")
    c.tick_all()  # the controller notices it ended and writes the 5 it still held
    after = _samples(w.ledger.history(release_id=r.id))
    assert c.samples.held() == set()  # nothing measured is left only in memory
    assert len(after) >= before + FLUSH_EVERY + 5
    assert len({s["t"] for s in after}) == len(after)  # each analysis once
    assert w.ledger.history(release_id=r.id)[-1].action == "measurements"
