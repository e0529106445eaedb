"""Webhooks told when a release needs someone or ends: a real HTTP receiver on a free port gets one
notification per event (generic JSON and Slack forms), a failing one gets retries with backoff,
every attempt is on record, and a receiver that hangs costs the controller nothing."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import people
import pytest
from rollout_fakes import World, config, healthy, world
from webhooks import Receiver

from launchbay.config import LaunchbayConfig
from launchbay.config.rollout import NotificationsSection
from launchbay.rollout.engine import decisions, operations
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.ledger import notify


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _cfg(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, **section: Any) -> LaunchbayConfig:
    monkeypatch.setenv("TEAM_HOOK", f"{url}/json")
    (tmp_path / "slack-url").write_text(f"{url}/slack\n")
    base = config()
    notifications = {
        "webhooks": [
            {"name": "team", "url_env": "TEAM_HOOK"},
            {"name": "slack", "format": "slack", "url_file": str(tmp_path / "slack-url"),
             "events": ["awaiting-approval", "rolled-back"]},
        ],
        "page_url": "http://127.0.0.1:8765",
        **section,
    }  # fmt: skip
    return base.model_copy(update={"notifications": NotificationsSection.model_validate(notifications)})


def _notifier(w: World) -> notify.Notifier:
    n = notify.notifier(w.ledger, w.ctx.cfg)
    assert n is not None
    n.outbox.clock = w.clock  # the ledger's events carry the fake clock's times
    return n


def test_each_event_is_delivered_once_to_each_webhook_that_asked_for_it(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world(tmp_path, _cfg(tmp_path, receiver.url, monkeypatch))
    w.registry.tags["2"] = {decisions.SIGNATURE_TAG: "f" * 64}
    n = _notifier(w)
    r = w.ticks(operations.create(w.ctx, "2", "dana"), 40)
    assert r.phase is Phase.AWAITING_APPROVAL
    assert n.deliver_due() == 2  # team (json) and slack
    people.approve(w.ctx, str(r.id), "alice")
    assert n.deliver_due() == 1  # promoted: team only (slack asked for two kinds)
    assert n.deliver_due() == 0  # nothing twice
    # A candidate whose errors break the SLO is rolled back; the notification names the check.
    w.metrics.values = healthy("3", "2") | {'version="3",role="shadow"&code="5xx"': 40.0}
    bad = w.ticks(operations.create(w.ctx, "3", "dana"), 20)
    assert bad.phase is Phase.ROLLED_BACK
    n.deliver_due()
    team = receiver.delivered("/json")
    assert [d["event"] for d in team] == ["awaiting-approval", "promoted", "rolled-back"]
    slack_wait, slack_roll = receiver.delivered("/slack")  # awaiting-approval and rolled-back only
    assert "waits for a release manager's approval" in slack_wait["text"]
    waiting, promoted, rolled = team
    assert waiting["release"] == r.name and waiting["version"] == "2" and waiting["author"] == "dana"
    assert (
        waiting["page"] == f"http://127.0.0.1:8765/releases/{r.id}"
        and waiting["type"] == "launchbay.release.awaiting-approval"
    )
    assert promoted["actor"] == "alice" and "approved by alice" in promoted["reason"]
    assert (
        rolled["failing_checks"] and rolled["failing_checks"][0]["check"] == "candidate error rate (mirrored)"
    )
    assert rolled["failing_checks"][0]["verdict"] == "FAIL"
    assert "was rolled back" in slack_roll["text"] and "candidate error rate (mirrored)" in slack_roll["text"]
    assert slack_roll["blocks"][0]["text"]["type"] == "mrkdwn"
    attempts = n.outbox.attempts()
    assert len(attempts) == 5 and all(a["ok"] and a["status"] == 200 for a in attempts)
    # The ledger never holds a webhook's URL.
    dump = json.dumps([e.to_dict() for e in w.ledger.history()])
    assert receiver.url not in dump and "127.0.0.1:" not in dump.replace("127.0.0.1:8765", "")


def test_a_failing_receiver_gets_retries_with_backoff_and_every_attempt_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = Receiver(codes=[500, 503])
    try:
        cfg = _cfg(tmp_path, failing.url, monkeypatch, backoff="10s", attempts=4)
        cfg = cfg.model_copy(update={"notifications": cfg.notifications.model_copy(
            update={"webhooks": cfg.notifications.webhooks[:1]})})  # fmt: skip
        w = world(tmp_path, cfg)
        n = _notifier(w)
        r = w.ticks(operations.create(w.ctx, "2", "dana"), 40)
        assert r.phase is Phase.AWAITING_APPROVAL
        assert n.deliver_due() == 1  # 500
        assert n.deliver_due() == 0  # backoff: not before 10 s
        w.clock.now += 10.5
        assert n.deliver_due() == 1  # 503
        w.clock.now += 10.5
        assert n.deliver_due() == 0  # the second backoff is doubled: 20 s
        w.clock.now += 10
        assert n.deliver_due() == 1  # 200
        w.clock.now += 100
        assert n.deliver_due() == 0
        attempts = n.outbox.attempts(r.id)
        assert [(a["attempt"], a["ok"], a["status"]) for a in attempts] == [
            (1, False, 500), (2, False, 503), (3, True, 200)
        ]  # fmt: skip
        assert "HTTP 500" in attempts[0]["error"] and len(failing.delivered("/json")) == 1
    finally:
        failing.close()


def test_a_receiver_that_refuses_the_message_is_not_retried_and_a_dead_one_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = Receiver(codes=[400])
    try:
        cfg = _cfg(tmp_path, refusing.url, monkeypatch, backoff="1s", attempts=3)
        w = world(tmp_path, cfg)
        n = _notifier(w)
        w.ticks(operations.create(w.ctx, "2", "dana"), 40)
        n.deliver_due()
        w.clock.now += 100
        n.deliver_due()
        team = [a for a in n.outbox.attempts() if a["webhook"] == "team"]
        assert len(team) == 1 and team[0]["error"].startswith("final: HTTP 400")
    finally:
        refusing.close()
    # Nothing listens any more: three attempts, each recorded with why, then no more.
    for _ in range(5):
        w.clock.now += 100
        n.deliver_due()
    slack = [a for a in n.outbox.attempts() if a["webhook"] == "slack"]
    assert slack[0]["ok"] and len(slack) == 1  # it had got through before the receiver went
    monkeypatch.setenv("TEAM_HOOK", "")
    assert "environment variable TEAM_HOOK is empty or not set" in (
        notify.send(w.ctx.cfg.notifications.webhooks[0], {}, tmp_path, 1.0).error or ""
    )


def test_a_hanging_receiver_does_not_slow_the_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def waiting_then_timed(w: World, before_timing: Callable[[], None]) -> list[float]:
        """Ticks of a release waiting for approval (analysis goes on), each timed."""
        c = w.controller()
        r = w.ticks(operations.create(w.ctx, "2", "dana"), 40, c=c)
        assert r.phase is Phase.AWAITING_APPROVAL
        before_timing()
        took = []
        for _ in range(30):
            started = time.perf_counter()
            r = c.tick(r)
            took.append(time.perf_counter() - started)
            w.clock.now += 1
        return took

    hanging = Receiver(hang=3.0)
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        baseline = waiting_then_timed(world(tmp_path / "a"), lambda: None)
        w = world(tmp_path / "b", _cfg(tmp_path, hanging.url, monkeypatch, timeout="2s"))
        n = _notifier(w)

        def receiver_hangs() -> None:
            n.start()
            deadline = time.monotonic() + 5
            while not hanging.arrived and time.monotonic() < deadline:
                time.sleep(0.01)
            assert hanging.arrived, "the notifier never called the receiver"

        try:
            with_hang = waiting_then_timed(w, receiver_hangs)
        finally:
            n.stop()
        # The controller's ticks take what they took without notifications, never a receiver's timeout.
        assert max(with_hang) < 1.0, with_hang
        assert statistics.median(with_hang) < 2 * statistics.median(baseline) + 0.02, (baseline, with_hang)
        timed_out = [a for a in n.outbox.attempts() if a["ok"] is False]
        assert timed_out and "ReadTimeout" in timed_out[0]["error"]
    finally:
        hanging.close()


def test_a_webhook_url_in_the_config_file_is_refused_with_what_to_do_instead() -> None:
    with pytest.raises(ValueError, match=r"does not belong in launchbay\.yaml: give url_env"):
        NotificationsSection.model_validate({"webhooks": [{"name": "x", "url": "https://hooks"}]})
    with pytest.raises(ValueError, match="exactly one of url_env or url_file"):
        NotificationsSection.model_validate({"webhooks": [{"name": "x"}]})


def test_failed_and_aborted_releases_are_told_too_with_why(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from launchbay.checks.registered import Verification
    from launchbay.checks.signature import VerifyResult
    from launchbay.checks.verdict import Verdict
    from launchbay.rollout.engine.controller import Controller

    w = world(tmp_path, _cfg(tmp_path, receiver.url, monkeypatch))
    n = _notifier(w)
    refused = Verification(
        "fraud-detector", "2", VerifyResult(Verdict.FAIL, "no trusted key verifies it", None)
    )
    c = Controller(w.ctx, w.metrics, clock=w.clock, verifier=lambda _c, _r: refused)
    failed = w.ticks(operations.create(w.ctx, "2", "dana"), 3, c=c)
    assert failed.phase is Phase.FAILED
    live = w.ticks(operations.create(w.ctx, "3", "dana"), 3)
    operations.abort(w.ctx, str(live.id), "oncall", "wrong data week")
    n.deliver_due()
    told = receiver.delivered("/json")
    assert [(d["event"], d["release_id"]) for d in told] == [("failed", failed.id), ("aborted", live.id)]
    assert "no trusted key verifies it" in told[0]["reason"]
    assert told[1]["actor"] == "oncall" and "wrong data week" in told[1]["reason"]
    assert receiver.delivered("/slack") == []  # that webhook asked for two other kinds only


def test_two_processes_delivering_from_one_shared_ledger_send_each_notification_once(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    import dataclasses

    from launchbay.rollout.ledger.store import SqlLedger

    w = world(tmp_path, _cfg(tmp_path, receiver.url, monkeypatch))
    w.ctx = dataclasses.replace(w.ctx, ledger=SqlLedger(postgres_url, clock=w.clock))
    r = w.ticks(operations.create(w.ctx, "2", "dana"), 40)
    assert r.phase is Phase.AWAITING_APPROVAL
    section = w.ctx.cfg.notifications
    # Two notifiers with engines of their own, as a controller and a `launchbay ui` would have.
    both = [
        notify.Notifier(notify.Outbox(SqlLedger(postgres_url), section, clock=w.clock), tmp_path)
        for _ in range(2)
    ]
    barrier = threading.Barrier(2)

    def deliver(n: notify.Notifier) -> None:
        barrier.wait()
        for _ in range(20):
            n.deliver_due()

    threads = [threading.Thread(target=deliver, args=(n,)) for n in both]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(receiver.delivered("/json")) == 1 and len(receiver.delivered("/slack")) == 1
    attempts = both[0].outbox.attempts(r.id)
    assert [(a["webhook"], a["attempt"], a["ok"]) for a in attempts] == [
        ("team", 1, True),
        ("slack", 1, True),
    ]


def test_a_step_past_its_progress_deadline_is_told_as_stalled_once_with_what_it_waits_for(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tmp_path, receiver.url, monkeypatch)
    cfg = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"progress_deadline": 5.0})})
    w = world(tmp_path, cfg)
    n = _notifier(w)
    r = w.ticks(operations.create(w.ctx, "2", "dana"), 3)
    w.metrics.values.clear()  # no traffic at all from now on: nothing can decide
    r = w.ticks(r, 30)
    stalled = [e for e in w.ledger.history(release_id=r.id) if e.action == "progress-deadline"]
    assert len(stalled) == 1 and "waiting for traffic" in stalled[0].reason
    n.deliver_due()
    told = [d for d in receiver.delivered("/json") if d["event"] == "stalled"]
    assert len(told) == 1 and told[0]["release_id"] == r.id and "has not decided in" in told[0]["reason"]
