"""What the database enforces, on SQLite and on a real PostgreSQL server: one live release per
model, an append-only log, and a hash chain that names the first event someone changed."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from rollout_fakes import PASSED, Clock, FakeRegistry, FakeTarget, Metrics, config, healthy, new_release

from launchbay.home import Home
from launchbay.rollout.engine import operations
from launchbay.rollout.engine.controller import Controller
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import LiveReleaseExists
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.targets.base import Routes


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _without_append_only(ledger: SqlLedger) -> sa.engine.Connection:
    """A connection of someone with the database's keys, who switched its rules off."""
    conn = ledger.engine.connect()
    if ledger.engine.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER events_no_update")
        conn.exec_driver_sql("DROP TRIGGER events_no_delete")
    else:
        conn.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER USER")
    return conn


def test_one_live_release_per_model_is_the_databases_rule(url: str) -> None:
    ledger = SqlLedger(url)
    first = new_release(ledger)
    with pytest.raises(LiveReleaseExists, match=r"fraud-detector@v3#1 is still pending"):
        new_release(ledger, version="4")
    new_release(ledger, model="churn")  # another model is not held
    with ledger.engine.connect() as conn, pytest.raises(sa.exc.IntegrityError):  # not even by hand
        conn.exec_driver_sql(
            "INSERT INTO releases (model, version, author, phase, step_index, consecutive_errors, plan, "
            "created_at, updated_at) VALUES ('fraud-detector', '9', 'x', 'canary', 0, 0, '[]', 0, 0)"
        )
    ledger.move(first, Phase.ABORTED, actor="dana", action="aborted")
    assert new_release(ledger, version="4").version == "4"


def test_of_releases_created_at_the_same_moment_exactly_one_is_created(url: str) -> None:
    SqlLedger(url)  # the schema exists before the race
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def release(version: str) -> None:
        ledger = SqlLedger(url)  # its own connections, as another process would have
        barrier.wait()
        try:
            new_release(ledger, version=version)
            outcomes.append("created")
        except LiveReleaseExists:
            outcomes.append("refused")

    threads = [threading.Thread(target=release, args=(str(v),)) for v in range(10, 16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] + ["refused"] * 5
    assert len(SqlLedger(url).releases("fraud-detector")) == 1


def test_the_event_log_refuses_changes_and_its_chain_verifies(url: str) -> None:
    ledger = SqlLedger(url)
    r = new_release(ledger)
    r = ledger.move(r, Phase.VERIFIED, actor="controller", action="verified")
    ledger.record(r, actor="controller", action="analysis", reason="PASS", evidence={"p95": 8.1})
    assert ledger.verify_chain("fraud-detector") == (3, None)
    for statement in ("UPDATE events SET actor = 'mallory'", "DELETE FROM events"):
        with ledger.engine.begin() as conn, pytest.raises(sa.exc.DatabaseError, match="append-only"):
            conn.exec_driver_sql(statement)
    events = ledger.history("fraud-detector")
    assert [e.prev_digest for e in events[1:]] == [e.digest for e in events[:-1]]


def test_a_changed_event_is_named_by_the_chain(url: str) -> None:
    ledger = SqlLedger(url)
    r = new_release(ledger)
    r = ledger.move(r, Phase.VERIFIED, actor="controller", action="verified")
    ledger.move(r, Phase.ABORTED, actor="dana", action="aborted", reason="not today")
    second = ledger.history("fraud-detector")[1]
    with _without_append_only(ledger) as conn:
        conn.execute(sa.text("UPDATE events SET actor = 'alice' WHERE id = :id"), {"id": second.id})
        conn.commit()
    count, broken = ledger.verify_chain("fraud-detector")
    assert count == 1 and broken is not None and broken.event_id == second.id
    assert "differs from what was recorded" in broken.problem


def test_a_removed_event_breaks_the_chain_at_the_next_one(url: str) -> None:
    ledger = SqlLedger(url)
    r = new_release(ledger)
    r = ledger.move(r, Phase.VERIFIED, actor="controller", action="verified")
    ledger.move(r, Phase.ABORTED, actor="dana", action="aborted")
    _, second, third = ledger.history("fraud-detector")
    with _without_append_only(ledger) as conn:
        conn.execute(sa.text("DELETE FROM events WHERE id = :id"), {"id": second.id})
        conn.commit()
    count, broken = ledger.verify_chain("fraud-detector")
    assert count == 1 and broken is not None and broken.event_id == third.id
    assert "does not follow the event before it" in broken.problem


def test_writers_appending_at_once_keep_one_chain(url: str) -> None:
    r = new_release(SqlLedger(url))
    barrier = threading.Barrier(4)

    def write(n: int) -> None:
        ledger = SqlLedger(url)
        barrier.wait()
        for i in range(5):
            ledger.record(r, actor=f"writer-{n}", action="analysis", reason=str(i))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert SqlLedger(url).verify_chain("fraud-detector") == (21, None)


def test_a_ledger_written_before_the_chain_existed_is_chained_once_and_verifies(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # the schema of the previous launchbay, with its events
        conn.exec_driver_sql(
            "CREATE TABLE releases (id INTEGER PRIMARY KEY AUTOINCREMENT, model VARCHAR(200) NOT NULL, "
            "version VARCHAR(50) NOT NULL, author VARCHAR(200) NOT NULL, stable_version VARCHAR(50), "
            "phase VARCHAR(30) NOT NULL, step_index INTEGER NOT NULL, step_started_at FLOAT, "
            "consecutive_errors INTEGER NOT NULL, plan TEXT NOT NULL, created_at FLOAT NOT NULL, "
            "updated_at FLOAT NOT NULL)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, release_id INTEGER NOT NULL "
            "REFERENCES releases (id), model VARCHAR(200) NOT NULL, at FLOAT NOT NULL, actor VARCHAR(200) "
            "NOT NULL, action VARCHAR(50) NOT NULL, phase_from VARCHAR(30), phase_to VARCHAR(30), reason "
            "TEXT NOT NULL, evidence TEXT NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO releases VALUES (1, 'fraud-detector', '1', 'dana', NULL, 'promoted', 0, 1, 0, "
            "'[]', 1, 2)"
        )
        for i, action in enumerate(("created", "verified", "promoted")):
            conn.exec_driver_sql(
                f"INSERT INTO events (release_id, model, at, actor, action, reason, evidence) VALUES "
                f"(1, 'fraud-detector', {i + 1}.5, 'launchbay', '{action}', '', '{{}}')"
            )
        conn.exec_driver_sql(
            "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
            "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END"
        )
    ledger = SqlLedger(f"sqlite:///{db}")
    assert ledger.verify_chain("fraud-detector") == (3, None)
    assert [e.action for e in ledger.history("fraud-detector")] == ["created", "verified", "promoted"]
    with ledger.engine.begin() as conn, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        conn.exec_driver_sql("UPDATE events SET actor = 'x'")


def test_two_controllers_on_one_shared_ledger_make_every_move_once(postgres_url: str, tmp_path: Path) -> None:
    """Two state directories (their own local targets) driving one model through one PostgreSQL
    ledger: each move has one winner, none is made twice, and the chain holds."""
    cfg = config()
    clock = Clock()
    ledger = SqlLedger(postgres_url, clock=clock)
    contexts = []
    for name in ("a", "b"):
        target = FakeTarget()
        target.deploy("fraud-detector", "1")
        target.servers["1"] = 99
        target.set_routes(Routes(stable=target.backend("1")))
        ctx = operations.Rollout(
            cfg,
            Home(tmp_path / name),
            SqlLedger(postgres_url, clock=clock),
            target,
            FakeRegistry({"champion": "1"}),
        )
        contexts.append(ctx)
    release = operations.create(contexts[0], "2", "dana")
    controllers = [
        Controller(ctx, Metrics(healthy()), clock=clock, verifier=lambda _c, _r: PASSED) for ctx in contexts
    ]
    done = threading.Event()

    def drive(c: Controller) -> None:
        for _ in range(200):
            r = c.tick(release)
            if r.phase is Phase.AWAITING_APPROVAL:
                done.set()
                return

    def tock() -> None:
        while not done.is_set():
            clock.now += 0.25
            done.wait(0.005)

    threads = [threading.Thread(target=drive, args=(c,)) for c in controllers] + [
        threading.Thread(target=tock)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    done.set()
    assert ledger.get(release.id).phase is Phase.AWAITING_APPROVAL
    moves = [
        (e.action, e.evidence.get("step_index"))
        for e in ledger.history(release_id=release.id)
        if e.action in ("verified", "step")
    ]
    steps = len(ledger.get(release.id).plan)
    assert len(moves) == 1 + steps and all(n == 1 for n in Counter(moves).values()), Counter(moves)
    assert ledger.verify_chain("fraud-detector")[1] is None
