"""The ledger: releases move only by the table, every change is logged, the log cannot be rewritten."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from rollout_fakes import new_release

from launchbay.rollout.engine.phases import IllegalTransition, Phase
from launchbay.rollout.engine.plan import Plan, SetWeight
from launchbay.rollout.engine.release import ConcurrentChange, UnknownRelease
from launchbay.rollout.ledger.store import SqlLedger


@pytest.fixture
def ledger(tmp_path: Path) -> SqlLedger:
    return SqlLedger(f"sqlite:///{tmp_path / 'ledger.db'}")


def test_a_release_moves_through_phases_and_every_move_is_an_event(ledger: SqlLedger) -> None:
    r = new_release(ledger)
    r = ledger.move(r, Phase.VERIFIED, actor="controller", action="verify", evidence={"key": "k.pub"})
    r = ledger.move(
        r, Phase.CANARY, actor="controller", action="set-weight", step_index=1, evidence={"weight": 5}
    )
    r = ledger.move(
        r, Phase.CANARY, actor="controller", action="set-weight", step_index=2, evidence={"weight": 25}
    )
    assert (r.phase, r.step_index) == (Phase.CANARY, 2)
    log = ledger.history("fraud-detector")
    assert [e.action for e in log] == ["created", "verify", "set-weight", "set-weight"]
    assert log[-1].evidence == {"weight": 25, "step_index": 2}
    assert (log[1].phase_from, log[1].phase_to, log[1].actor) == ("pending", "verified", "controller")


def test_an_illegal_move_changes_nothing(ledger: SqlLedger) -> None:
    r = new_release(ledger)
    with pytest.raises(IllegalTransition):
        ledger.move(r, Phase.PROMOTED, actor="mallory", action="promote")
    assert ledger.get(r.id).phase is Phase.PENDING
    assert [e.action for e in ledger.history(release_id=r.id)] == ["created"]


def test_two_actors_cannot_move_the_same_release_from_the_same_state(ledger: SqlLedger) -> None:
    seen = ledger.move(new_release(ledger), Phase.VERIFIED, actor="controller", action="verify")
    ledger.move(seen, Phase.ROLLED_BACK, actor="oncall", action="rollback", reason="pager")
    with pytest.raises(ConcurrentChange):
        ledger.move(seen, Phase.SHADOW, actor="controller", action="shadow")
    assert ledger.get(seen.id).phase is Phase.ROLLED_BACK


def test_the_event_log_is_append_only(ledger: SqlLedger) -> None:
    new_release(ledger)
    with ledger.engine.begin() as conn, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        conn.exec_driver_sql("UPDATE events SET actor = 'someone else'")
    with ledger.engine.begin() as conn, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        conn.exec_driver_sql("DELETE FROM events")


def test_state_survives_a_new_ledger_instance(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    r = SqlLedger(url).move(new_release(SqlLedger(url)), Phase.VERIFIED, actor="c", action="verify")
    again = SqlLedger(url).get(r.id)
    assert again.phase is Phase.VERIFIED and again.plan == Plan(steps=(SetWeight(percent=5),))
    assert isinstance(again.plan[0], SetWeight)  # typed again when read back, not a dict


def test_records_live_releases_and_unknown_ids(ledger: SqlLedger) -> None:
    live = ledger.move(new_release(ledger, version="3"), Phase.VERIFIED, actor="c", action="verify")
    new_release(ledger, version="4", model="churn")  # pending: not live yet
    ledger.record(
        live,
        actor="controller",
        action="analysis",
        reason="INCONCLUSIVE: 12 samples < 50",
        evidence={"samples": 12},
        consecutive_errors=1,
    )
    assert [r.id for r in ledger.releases("fraud-detector", live_only=True)] == [live.id]
    assert ledger.get(live.id).consecutive_errors == 1
    assert ledger.history(release_id=live.id)[-1].reason.startswith("INCONCLUSIVE")
    with pytest.raises(UnknownRelease):
        ledger.get(999)


def test_any_sqlalchemy_url_holds_the_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from launchbay.home import Home

    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("LAUNCHBAY_LEDGER_URL", shared)
    a = SqlLedger.for_home(Home(tmp_path / "machine-a"))
    a.create(model="m", version="2", author="dana", stable_version="1", plan=Plan())
    b = SqlLedger.for_home(Home(tmp_path / "machine-b"))  # another machine, same shared ledger
    assert [r.version for r in b.releases("m")] == ["2"]
    assert not (tmp_path / "machine-a" / "ledger.db").exists()
    explicit = SqlLedger.for_home(Home(tmp_path / "c"), f"sqlite:///{tmp_path / 'other.db'}")
    assert explicit.releases("m") == []


def test_a_ledger_writable_again_is_written_at_once_not_after_its_pooled_connections_age(
    tmp_path: Path,
) -> None:
    import shutil
    import subprocess

    from launchbay.rollout.engine.release import LedgerUnavailable

    ledger = SqlLedger(f"sqlite:///{tmp_path / 'ledger.db'}")
    r = new_release(ledger)
    files = [str(p) for p in tmp_path.glob("ledger.db*")]
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", *files], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not possible here (scripts/setup.sh installs e2fsprogs)")
    try:
        with pytest.raises(LedgerUnavailable, match="cannot be written"):
            ledger.record(r, actor="c", action="note", reason="while immutable")
        # Readers go on meanwhile (status, the gateway): their connections open read-only now.
        with ledger.engine.connect() as a, ledger.engine.connect() as b:
            a.execute(sa.text("SELECT count(*) FROM events")), b.execute(sa.text("SELECT 1"))
    finally:
        subprocess.run([chattr, "-i", *files], check=True)
    ledger.record(r, actor="c", action="note", reason="writable again")  # no read-only connection left
    assert ledger.history(release_id=r.id)[-1].reason == "writable again"
