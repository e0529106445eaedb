"""The monitor's passes: pulling answer logs, counting rows once, labels, alarms, retrains."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rollout_fakes import ROLLOUT, FakeTarget, world

from launchbay import procs
from launchbay.checks.live_drift import binned
from launchbay.checks.live_performance import Offline
from launchbay.checks.live_reference import ANSWER, Reference
from launchbay.config import LaunchbayConfig
from launchbay.rollout.local import feedback
from launchbay.rollout.monitor import retrain, watch
from launchbay.rollout.monitor.state import State, append_window, window
from launchbay.serving.answer_log import AnswerLog, row_digest

MONITOR = {"every": "1s", "bet_every": "2s", "keep": "1m", "retrain": {"min_labelled": 50, "cooldown": "1h"}}


def _config(tmp: Path, **monitor: Any) -> LaunchbayConfig:
    pd.DataFrame({"x": [0.0], "y": [0]}).to_csv(tmp / "d.csv", index=False)
    cfg = LaunchbayConfig.model_validate(
        {
            "model": {"name": "fraud-detector", "train": "pkg.mod:train"},
            "data": {"path": "d.csv", "target": "y", "min_rows": 10, "features": {"x": {"type": "float"}}},
            "rollout": ROLLOUT,
            "monitor": {**MONITOR, **monitor},
        }
    )
    return cfg.model_copy(update={"source": tmp / "launchbay.yaml"})


@dataclass
class Served(FakeTarget):
    """A target whose stable server keeps an answer log (read through `httpx.get`, patched)."""

    log: AnswerLog | None = None

    def endpoints(self, version: str) -> list[str]:
        return ["http://m1"] if version in self.servers else []


class Response:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def raise_for_status(self) -> Response:
        return self

    def json(self) -> dict[str, Any]:
        return self.doc


@pytest.fixture
def bay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    target = Served(log=AnswerLog(500))
    w = world(tmp_path, _config(tmp_path), target)
    monkeypatch.setattr(
        watch.httpx, "get", lambda url, timeout: Response(target.log.since(int(url.rsplit("=", 1)[1])))
    )
    reference = Reference(
        "binary",
        [binned("x", np.random.default_rng(0).normal(size=4000).tolist(), categorical=False)],
        binned(ANSWER, np.random.default_rng(1).uniform(size=4000).tolist(), categorical=False),
        Offline(losses=100, rows=1000),
    )
    directory = tmp_path / "monitor"
    directory.mkdir()
    (directory / "reference-v1.json").write_text(reference.to_json())
    return w, target, directory


def _serve(
    target: Served, rng: np.random.Generator, n: int, shift: float = 0.0, prefix: str = "r"
) -> list[str]:
    ids = []
    for i in range(n):
        x = float(rng.normal(shift))
        score = float(rng.uniform())
        rid = f"{prefix}{i}"
        assert target.log is not None
        target.log.add(
            rid, [row_digest({"x": x})], [{"prediction": int(score > 0.5), "score": score}], [{"x": x}]
        )
        ids.append(rid)
    return ids


def test_rows_are_counted_once_and_a_restarted_server_is_read_from_its_start(bay: Any) -> None:
    w, target, directory = bay
    m = watch.Monitor(w.ctx, directory, directory, clock=w.clock)
    rng = np.random.default_rng(2)
    _serve(target, rng, 100)
    target.log.add("again", [row_digest({"x": 0.5})], [{"prediction": 0, "score": 0.1}], [{"x": 0.5}])
    target.log.add("again2", [row_digest({"x": 0.5})], [{"prediction": 0, "score": 0.1}], [{"x": 0.5}])
    s = m.tick()
    assert (s.version, s.rows, s.repeated, s.lost) == ("1", 101, 1, 0)
    assert m.tick().rows == 101  # nothing new: nothing counted twice
    target.log = AnswerLog(500)  # the server restarted: its count begins again
    _serve(target, rng, 30, prefix="n")
    assert m.tick().rows == 131
    assert len(list(window(directory))) == 131


def test_a_lost_stretch_of_the_ring_is_said(bay: Any) -> None:
    w, target, directory = bay
    target.log = AnswerLog(50)
    m = watch.Monitor(w.ctx, directory, directory, clock=w.clock)
    _serve(target, np.random.default_rng(3), 120)
    s = m.tick()
    assert s.rows == 50 and s.lost == 70


def test_stationary_rows_raise_nothing_and_the_state_survives_a_restart(bay: Any) -> None:
    w, target, directory = bay
    rng = np.random.default_rng(4)
    m = watch.Monitor(w.ctx, directory, directory, clock=w.clock)
    for _ in range(30):
        _serve(target, rng, 40)
        m.tick()
        w.clock.now += 1
    again = watch.Monitor(w.ctx, directory, directory, clock=w.clock)  # a restarted controller
    _serve(target, rng, 40)
    s = again.tick()
    assert s.alarms == [] and s.rows == 31 * 40
    assert State.load(directory).drift["batches"] == 31  # the same bets, carried on


def test_a_shift_alarms_once_then_a_retrain_waits_for_labels_and_starts_on_the_labelled_window(
    bay: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, target, directory = bay
    started: list[tuple[Path, Path]] = []
    running = {
        "pid": os.getpid(),
        "created": procs.created(os.getpid()),
        "started_at": 0.0,
    }  # "still running"
    monkeypatch.setattr(retrain, "start", lambda cfg, home, data, ref: started.append((data, ref)) or running)
    rng = np.random.default_rng(5)
    m = watch.Monitor(w.ctx, directory, directory, clock=w.clock)
    ids: list[str] = []
    for i in range(20):
        ids += _serve(target, rng, 40, shift=1.5, prefix=f"b{i}-")
        s = m.tick()
        w.clock.now += 1
    assert [a["kind"] for a in s.alarms] == ["drift"]
    assert [e.action for e in w.ledger.notes("fraud-detector")] == ["drift-detected"]
    assert "labels: 0 of the 50" in (s.waiting or "") and started == []
    feedback.append(directory, [{"id": rid, "label": 1} for rid in ids[:60]], "test")
    s = m.tick()
    assert len(started) == 1 and s.retrain is not None and s.retrain["rows"] == 60
    data, reference = started[0]
    frame = pd.read_parquet(data)
    assert list(frame.columns) == ["x", "y"] and len(frame) == 60 and set(frame["y"]) == {1}
    assert list(pd.read_parquet(reference).columns) == ["x"]
    # Every label says 1 while the answers were coin flips: the live loss is far over offline's too.
    notes = [e.action for e in w.ledger.notes("fraud-detector")]
    assert notes == ["drift-detected", "performance-dropped", "retrain-started"]
    m.tick()
    assert len(started) == 1  # one retrain per alarm


def test_labels_are_joined_by_request_id_and_a_line_being_written_waits(bay: Any) -> None:
    w, target, directory = bay
    m = watch.Monitor(w.ctx, directory, directory, clock=w.clock)
    ids = _serve(target, np.random.default_rng(6), 10)
    m.tick()
    feedback.append(directory, [{"id": rid, "label": 1} for rid in ids[:4]], "test")
    with (directory / feedback.FEEDBACK_FILE).open("a") as f:
        f.write('{"id": "r5", "lab')
    s = m.tick()
    assert s.labelled == 4 and State.load(directory).loss["labelled"] == 4
    with (directory / feedback.FEEDBACK_FILE).open("a") as f:
        f.write('el": 0, "at": 1, "by": "x"}\n')
    assert m.tick().labelled == 5


def test_a_monitor_stopped_between_two_writes_neither_repeats_an_alarm_nor_starts_a_second_retrain(
    bay: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, target, directory = bay
    rng = np.random.default_rng(7)
    m = watch.Monitor(w.ctx, directory, directory, clock=w.clock)
    m.tick()
    _serve(target, rng, 200, shift=2.0)
    assert m.tick().alarms == []  # a bet learns the shift in one batch and wins on the next
    before = (directory / "state.json").read_bytes()  # the state as the next pass finds it
    save = watch.State.save
    monkeypatch.setattr(watch.State, "save", lambda self, d: None)  # killed before the state is saved
    _serve(target, rng, 200, shift=2.0)
    m.tick()
    assert [e.action for e in w.ledger.notes("fraud-detector")] == ["drift-detected"]
    monkeypatch.setattr(watch.State, "save", save)
    (directory / "state.json").write_bytes(before)
    again = watch.Monitor(w.ctx, directory, directory, clock=w.clock)  # restarted: the same pass again
    s = again.tick()
    assert [a["kind"] for a in s.alarms] == ["drift"] and s.alarms[0]["recorded"]
    assert [e.action for e in w.ledger.notes("fraud-detector")] == ["drift-detected"]  # not twice

    # Killed after the retrain went on record as starting, before its process did.
    s.retrain = {"starting": True, "started_at": 0.0, "data": "/w.parquet", "rows": 1, "captured": 1}
    s.save(directory)
    started: list[Any] = []
    monkeypatch.setattr(retrain, "start", lambda *a: started.append(a) or {})
    s = watch.Monitor(w.ctx, directory, directory, clock=w.clock).tick()
    assert started == [] and s.retrain is not None and "may not have started" in s.retrain["ended"]["reason"]


def test_a_server_that_keeps_no_answers_is_named_with_what_makes_it_capture(
    bay: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    w, target, directory = bay

    def not_found(url: str, timeout: float) -> Any:
        request = httpx.Request("GET", url)
        return httpx.Response(404, request=request)

    monkeypatch.setattr(watch.httpx, "get", not_found)
    m = watch.Monitor(w.ctx, directory, directory, clock=w.clock)
    m.tick()
    said = m.summary()["waiting_for"]
    assert "started before `monitor:` was set" in said and "http://m1" in said
    target.servers.clear()  # nothing runs
    m.tick()
    assert "none answers now" in m.summary()["waiting_for"]


def test_labels_named_otherwise_in_label_files_are_trained_on_under_the_target_column(tmp_path: Path) -> None:
    cfg = _config(tmp_path, feedback={"label_column": "chargeback"})
    append_window(tmp_path, [{"id": "r1", "at": 0, "version": "1", "row": {"x": 0.5}, "answer": {}}])
    win = retrain.labelled_window(cfg, tmp_path, {"r1": 1})
    assert win.rows == [{"x": 0.5, "y": 1}] and win.captured == 1
