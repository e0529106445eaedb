"""Change freezes: configured RFC 5545 windows and signed emergency freezes stop releases,
advances and promotions -- never a rollback -- and say which freeze and until when."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import people
import pytest
from rollout_fakes import World, world

from launchbay.checks import approvals
from launchbay.config import LaunchbayConfig
from launchbay.config.freeze import FreezeWindow
from launchbay.errors import Refused
from launchbay.home import Home
from launchbay.rollout.engine import decisions, freeze, operations
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.ledger import audit


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_a_weekly_window_keeps_its_wall_clock_time_across_daylight_saving() -> None:
    weekend = FreezeWindow(name="weekend", start=dt.datetime(2026, 1, 2, 18), duration="62h",
                           rrule="FREQ=WEEKLY;BYDAY=FR", timezone="Europe/Berlin")  # fmt: skip
    # Winter: Friday 18:00 CET is 17:00 UTC; summer: 18:00 CEST is 16:00 UTC.
    assert weekend.occurrence(_utc("2026-12-04T16:59")) is None
    assert weekend.occurrence(_utc("2026-12-04T17:00")) is not None
    assert weekend.occurrence(_utc("2026-07-03T16:00")) is not None
    assert weekend.occurrence(_utc("2026-07-03T15:59")) is None
    start, end = weekend.occurrence(_utc("2026-12-06T12:00")) or (None, None)
    assert start is not None and end is not None and (end - start) == dt.timedelta(hours=62)
    assert weekend.occurrence(_utc("2026-12-07T07:01")) is None  # Monday 08:01 in Berlin
    assert weekend.next_start(_utc("2026-12-07T07:01")) == dt.datetime(2026, 12, 11, 18, tzinfo=start.tzinfo)
    once = FreezeWindow(name="launch", start="2026-12-20T00:00:00+00:00", duration="14d")
    assert once.occurrence(_utc("2027-01-02T23:59")) is not None
    assert once.occurrence(_utc("2027-01-03T00:01")) is None


@pytest.mark.parametrize(
    ("window", "said"),
    [
        ({"rrule": "FREQ=SOMETIMES"}, "not an RFC 5545 recurrence rule"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"duration": "forever"}, "duration"),
    ],
)
def test_a_window_the_calendar_cannot_read_is_named_at_load(
    tmp_path: Path, window: dict[str, str], said: str
) -> None:
    import yaml

    from launchbay.config import load_config
    from launchbay.errors import ConfigError

    doc = {
        "model": {"name": "m", "train": "pkg.mod:train"},
        "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
        "freeze": [{"name": "w", "start": "2026-12-20T00:00", "duration": "1h", **window}],
    }
    (tmp_path / "launchbay.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=f"freeze.0.*{said}"):
        load_config(tmp_path / "launchbay.yaml")


def _frozen_now(w: World, now: dt.datetime, hours: float = 2) -> None:
    """Configure a window that is open at `now` (the controller's clock)."""
    window = FreezeWindow(name="release-night", start=now - dt.timedelta(minutes=1), duration=hours * 3600,
                          reason="year-end")  # fmt: skip
    w.ctx.cfg = w.ctx.cfg.model_copy(update={"freeze": [window]})


def test_a_window_holds_a_release_under_way_and_a_failing_candidate_is_still_rolled_back(
    tmp_path: Path,
) -> None:
    w = world(tmp_path)
    r = operations.create(w.ctx, "2", "dana")
    c = w.controller()
    while r.phase is not Phase.CANARY:
        r = w.ticks(r, 1, c=c)
    weight = w.target.routes().canary_weight
    _frozen_now(w, dt.datetime.fromtimestamp(w.clock.now, dt.UTC))
    r = w.ticks(r, 60, c=c)  # far longer than the steps take
    assert r.phase is Phase.CANARY and w.target.routes().canary_weight == weight
    held = [e for e in w.ledger.history(release_id=r.id) if e.action == freeze.HELD]
    assert len(held) == 1
    assert "frozen by the freeze window 'release-night' (year-end), until" in held[0].reason
    # Watched while held: a candidate that starts failing is rolled back inside the freeze.
    w.metrics.values['version="2",role="primary"&code="5xx"'] = 60.0
    r = w.ticks(r, 5, c=c)
    assert r.phase is Phase.ROLLED_BACK and w.target.routes().canary is None


def test_after_the_window_the_release_goes_on(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = operations.create(w.ctx, "2", "dana")
    c = w.controller()
    while r.phase is not Phase.CANARY:
        r = w.ticks(r, 1, c=c)
    _frozen_now(w, dt.datetime.fromtimestamp(w.clock.now, dt.UTC), hours=0.01)  # 36 s
    r = w.ticks(r, 60, c=c)
    assert r.phase is Phase.AWAITING_APPROVAL


def _declare(
    w: World, on: bool, name: str = "alice", key_of: str | None = None, reason: str = "incident 42",
    until: float | None = None,
) -> freeze.Frozen | None:  # fmt: skip
    key = str(people.key(key_of or name))
    return freeze.declare(w.ctx.cfg, w.ledger, on, name, key, reason, until)[1]


def test_an_emergency_freeze_refuses_a_release_and_a_promotion_and_rollback_still_works(
    tmp_path: Path,
) -> None:
    w = world(tmp_path)
    w.registry.tags["2"] = {decisions.SIGNATURE_TAG: "f" * 64}
    r = w.ticks(operations.create(w.ctx, "2", "dana"), 40)
    assert r.phase is Phase.AWAITING_APPROVAL
    frozen = _declare(w, True)
    assert frozen is not None and frozen.by == "alice" and frozen.until is None
    said = "approve refused: fraud-detector is frozen by the emergency freeze by alice (incident 42), until"
    with pytest.raises(Refused, match=re.escape(said)):
        decisions.approve(w.ctx, people.signed(w.ctx, r, "bob"))
    assert w.ledger.get(r.id).phase is Phase.AWAITING_APPROVAL
    rolled, changed = operations.rollback(w.ctx, "oncall", "pager")
    assert changed and rolled.phase is Phase.ROLLED_BACK
    with pytest.raises(Refused, match="releasing fraud-detector version 2 refused: fraud-detector is frozen"):
        operations.create(w.ctx, "2", "dana")
    assert _declare(w, False, reason="incident over") is None
    assert operations.create(w.ctx, "2", "dana").phase is Phase.PENDING
    notes = [(e.action, e.actor, e.release_id) for e in w.ledger.notes("fraud-detector")]
    assert notes == [(freeze.FREEZE_ON, "alice", None), (freeze.FREEZE_OFF, "alice", None)]


def test_an_emergency_freeze_with_an_end_ends_by_itself(tmp_path: Path) -> None:
    import time

    w = world(tmp_path)
    frozen = _declare(w, True, until=time.time() + 3600)
    assert frozen is not None and frozen.until is not None
    assert freeze.emergency(w.ledger, "fraud-detector", time.time() + 3601) is None


def test_only_a_release_manager_with_their_own_key_may_freeze_and_every_refusal_is_recorded(
    tmp_path: Path,
) -> None:
    w = world(tmp_path)
    with pytest.raises(Refused, match="mallory is not a release manager of fraud-detector"):
        _declare(w, True, name="mallory")
    with pytest.raises(Refused, match=r"signed with key sha256:\w+, not with alice's configured key"):
        _declare(w, True, name="alice", key_of="dana")
    refused = w.ledger.notes("fraud-detector")
    assert [(e.action, e.actor) for e in refused] == [(freeze.FREEZE_REFUSED, "mallory"),
                                                      (freeze.FREEZE_REFUSED, "alice")]  # fmt: skip
    assert all("os_user" in e.evidence["ran_by"] for e in refused)
    assert freeze.active(w.ctx.cfg, w.ledger, "fraud-detector") is None


def test_audit_checks_each_freeze_signature_and_names_a_forged_one(tmp_path: Path) -> None:
    w = world(tmp_path)
    _declare(w, True)
    _declare(w, False, reason="over")
    cfg: LaunchbayConfig = w.ctx.cfg
    report = audit.audit(cfg, Home(tmp_path), "fraud-detector")
    checked = [(d.action, d.verdict) for d in report.decisions]
    assert checked == [("freeze-on", "PASS"), ("freeze-off", "PASS")]
    # A freeze written straight into the ledger by someone with dana's key, in alice's name.
    stmt = approvals.FreezeStatement("fraud-detector", True, "alice", 1.0, "forged")
    forged = approvals.sign_freeze(stmt, approvals.load_private(str(people.key("dana"))))
    w.ledger.note("fraud-detector", actor="alice", action=freeze.FREEZE_ON, reason="forged",
                  evidence={"freeze": forged.to_dict(), "until": None})  # fmt: skip
    edited = dataclasses.replace(forged, statement=dataclasses.replace(stmt, model="other"))
    w.ledger.note("fraud-detector", actor="alice", action=freeze.FREEZE_OFF, reason="edited",
                  evidence={"freeze": edited.to_dict()})  # fmt: skip
    verdicts = [(d.verdict, d.message) for d in audit.audit(cfg, Home(tmp_path), "fraud-detector").decisions]
    assert verdicts[2][0] == "FAIL" and "not with alice's configured key" in verdicts[2][1]
    assert verdicts[3][0] == "FAIL" and "about other" in verdicts[3][1]



def test_the_freeze_verb_says_what_is_wrong_and_what_is_in_force(tmp_path: Path) -> None:
    import json

    import yaml
    from harness import assert_clean_error, lb

    doc = {
        "model": {"name": "churn", "train": "pkg.mod:train"},
        "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
        "rollout": {"approval": {"required": True, "approvers": people.approvers("alice")}},
        "freeze": [{"name": "quarter-end", "start": "2026-03-30T00:00", "duration": "2d",
                    "rrule": "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYMONTHDAY=30", "timezone": "UTC"}],
    }  # fmt: skip
    (tmp_path / "launchbay.yaml").write_text(yaml.safe_dump(doc))
    assert_clean_error(lb("freeze", "on", "--as", "alice", cwd=tmp_path), 2, "--reason")
    past = lb("freeze", "on", "--as", "alice", "--reason", "x", "--until", "1999-01-01", cwd=tmp_path)
    assert_clean_error(past, 2, "--until '1999-01-01' is in the past")
    assert_clean_error(lb("freeze", "sideways", cwd=tmp_path), 2)
    on = lb("freeze", "on", "--as", "alice", "--reason", "incident 7", "--until", "2h", "--json",
            cwd=tmp_path)  # fmt: skip
    assert on.returncode == 0, on.output
    frozen = json.loads(on.stdout)["frozen"]
    assert frozen["name"] == "emergency" and frozen["by"] == "alice" and frozen["until"] > frozen["since"]
    status = lb("freeze", "status", "--json", cwd=tmp_path)
    assert json.loads(status.stdout)["next_window"].startswith("'quarter-end' from ")
    off = lb("freeze", "off", "--as", "alice", "--reason", "over", cwd=tmp_path)
    assert off.returncode == 0 and "churn is not frozen" in off.stdout, off.output
    again = lb("freeze", "off", "--as", "alice", cwd=tmp_path)
    assert again.returncode == 0 and "had no emergency freeze; nothing was recorded" in again.stdout
