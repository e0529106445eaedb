"""The witness catches what the hash chain alone cannot: a removed tail and a recomputed chain."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from rollout_fakes import new_release

from launchbay.home import Home
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.ledger import audit
from launchbay.rollout.ledger.schema import event_digest, events
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.ledger.witness import Witness


def _ledger(tmp: Path) -> SqlLedger:
    return SqlLedger.for_home(Home(tmp))


def _rollout(ledger: SqlLedger) -> None:
    r = new_release(ledger)
    r = ledger.move(r, Phase.VERIFIED, actor="launchbay-controller", action="verified")
    r = ledger.move(r, Phase.CANARY, actor="launchbay-controller", action="step", step_index=0)
    ledger.record(r, actor="launchbay-controller", action="analysis", reason="step 1: FAIL")
    ledger.move(r, Phase.ROLLED_BACK, actor="launchbay-controller", action="rollback", reason="errors")


def _tamper(ledger: SqlLedger, *statements: str) -> None:
    """What someone with the database can do: drop the append-only triggers and write."""
    with ledger.engine.begin() as conn:
        for name in ("events_no_update", "events_no_delete"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        for sql in statements:
            conn.exec_driver_sql(sql)


def test_every_write_is_witnessed_and_an_intact_log_audits_clean(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _rollout(ledger)
    report = audit.audit(None, Home(tmp_path), "fraud-detector")
    assert report.ok and report.witnessed == 5 and report.unwitnessed == []
    key = tmp_path / "keys" / "witness.pem"
    assert key.stat().st_mode & 0o777 == 0o600  # the database never holds it
    with ledger.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(sa.select(events)) for v in row)
    assert "PRIVATE" not in stored and key.read_text() not in stored


def test_the_last_events_deleted_is_named_a_removed_tail(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _rollout(ledger)
    _tamper(ledger, "DELETE FROM events WHERE id >= 4")  # the FAIL and the rollback, gone
    assert ledger.verify_chain("fraud-detector") == (3, None)  # the chain alone sees nothing wrong
    report = audit.audit(None, Home(tmp_path), "fraud-detector")
    assert not report.ok
    assert report.first_problem.startswith("the newest events were removed: #4-#5")
    assert "the log now ends at #3" in report.first_problem


def test_an_edit_with_the_chain_recomputed_is_named(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _rollout(ledger)
    # Rewrite the FAIL as a PASS and recompute every digest from there: the chain verifies.
    with ledger.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(events).order_by(events.c.id)).mappings()]
    _tamper(ledger, "DROP INDEX IF EXISTS events_chain")
    prev = ""
    with ledger.engine.begin() as conn:
        for row in rows:
            if row["action"] == "analysis":
                row["reason"] = "step 1: PASS"
            row["prev_digest"] = prev
            row["digest"] = prev = event_digest(row)
            conn.execute(
                events.update()
                .where(events.c.id == row["id"])
                .values(reason=row["reason"], prev_digest=row["prev_digest"], digest=row["digest"])
            )
    assert ledger.verify_chain("fraud-detector")[1] is None
    report = audit.audit(None, Home(tmp_path), "fraud-detector")
    assert not report.ok
    assert report.first_problem.startswith("event #4 is not the one witnessed at")
    assert "changed and the chain recomputed" in report.first_problem


def test_a_forged_or_missing_witness_log_is_named_too(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _rollout(ledger)
    log = tmp_path / "witness" / "fraud-detector.jsonl"
    lines = log.read_text().splitlines()
    forged = json.loads(lines[-1]) | {"digest": "0" * 64}
    log.write_text("\n".join([*lines[:-1], json.dumps(forged)]) + "\n")
    report = audit.audit(None, Home(tmp_path), "fraud-detector")
    assert not report.ok and "signature does not verify" in report.first_problem
    log.unlink()
    gone = audit.audit(None, Home(tmp_path), "fraud-detector")
    assert not gone.ok and "the witness log is gone" in gone.first_problem


def test_events_written_without_the_witness_key_are_listed_not_failed(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _rollout(ledger)
    elsewhere = SqlLedger(ledger.url)  # a process of another machine, without this state's key
    r = elsewhere.releases("fraud-detector")[0]
    elsewhere.record(r, actor="bob", action="note", reason="looked at it")
    report = audit.audit(None, Home(tmp_path), "fraud-detector")
    assert report.ok and report.unwitnessed == [6]
    assert any("1 events not witnessed (#6)" in line for line in report.lines())


def test_a_second_machines_witness_key_can_be_trusted(tmp_path: Path) -> None:
    mine = Witness(tmp_path / "w", tmp_path / "a" / "witness.pem")
    theirs = Witness(tmp_path / "w", tmp_path / "b" / "witness.pem")
    mine.witness("m", 1, "d1", 1.0)
    theirs.witness("m", 2, "d2", 2.0)
    assert [m.event_id for m in mine.read("m").marks] == [1]
    assert "unknown key" in mine.read("m").bad[0]
    trusting = Witness(tmp_path / "w", tmp_path / "a" / "witness.pem", [tmp_path / "b" / "witness.pub"])
    assert [m.event_id for m in trusting.read("m").marks] == [1, 2]
