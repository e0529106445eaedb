"""The ledger's schema revisions: who applies them, and what a connecting process does."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from rollout_fakes import new_release

from launchbay.rollout.ledger import migrations
from launchbay.rollout.ledger.schema import build
from launchbay.rollout.ledger.store import SqlLedger


def _indexes(engine: sa.Engine) -> set[str]:
    return {i["name"] for i in sa.inspect(engine).get_indexes("events") if i["name"]}


def test_the_embedded_ledger_is_brought_to_the_newest_revision_by_its_first_user(tmp_path: Path) -> None:
    ledger = SqlLedger(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert migrations.current(ledger.engine) == migrations.head()
    assert "ix_events_release_action" in _indexes(ledger.engine)


def test_a_shared_ledger_without_the_schema_is_refused_and_left_untouched(empty_postgres_url: str) -> None:
    with pytest.raises(migrations.SchemaBehind, match=r"no launchbay schema.*`launchbay ledger upgrade`"):
        SqlLedger(empty_postgres_url)
    engine = sa.create_engine(empty_postgres_url)
    assert migrations.tables(engine) == set()  # connecting never created anything
    assert migrations.upgrade(engine) == (None, migrations.head())
    new_release(SqlLedger(empty_postgres_url))  # now it works


def test_a_shared_ledger_behind_additive_revisions_works_says_so_and_refuses_only_what_needs_them(
    empty_postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0002 (an index) and 0003 (events about a model, e.g. a freeze) only add: a ledger at 0001
    is used with a warning, nothing there is changed by a connecting process, and the one thing
    it cannot hold -- a freeze -- is refused naming the command; after the upgrade it is recorded."""
    engine = sa.create_engine(empty_postgres_url)
    migrations.upgrade(engine, "0001")
    ledger = SqlLedger(empty_postgres_url)
    assert "is at schema 0001, 0003 is available: run `launchbay ledger upgrade`" in capsys.readouterr().err
    release = new_release(ledger)
    assert migrations.current(engine) == "0001"  # the process did not migrate it
    assert ledger.notes(release.model) == []  # freezes are read (there are none)
    with pytest.raises(migrations.SchemaBehind, match=r"need 0003; run `launchbay ledger upgrade`"):
        ledger.note(release.model, actor="alice", action="freeze-on", reason="incident")
    assert migrations.upgrade(engine) == ("0001", migrations.head())
    assert "ix_events_release_action" in _indexes(engine)
    assert ledger.get(release.id).version == release.version  # nothing lost
    note = ledger.note(release.model, actor="alice", action="freeze-on", reason="incident")
    assert note.release_id is None and ledger.notes(release.model) == [note]
    assert ledger.verify_chain(release.model) == (2, None)
    with engine.begin() as conn, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        conn.execute(sa.text("DELETE FROM events"))


def test_an_embedded_ledger_keeps_its_events_chain_and_guards_through_0003(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = sa.create_engine(url)
    migrations.upgrade(engine, "0002")
    monkeypatch.setattr(migrations, "HEAD", "0002")  # a launchbay of 0002 writes it
    old = SqlLedger(url)
    release = new_release(old)
    old.record(release, actor="launchbay-controller", action="analysis", reason="step 1: PASS")
    before = [(e.id, e.digest) for e in old.history(release.model)]
    monkeypatch.undo()
    ledger = SqlLedger(url)  # this launchbay: the embedded ledger is brought to head on open
    assert migrations.current(engine) == migrations.head()
    assert [(e.id, e.digest) for e in ledger.history(release.model)] == before
    ledger.note(release.model, actor="alice", action="freeze-on", reason="incident")
    assert ledger.verify_chain(release.model) == (len(before) + 1, None)
    with engine.begin() as conn, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        conn.execute(sa.text("UPDATE events SET reason = 'rewritten'"))
    assert {"events_chain", "ix_events_release_action"} <= _indexes(engine)


def test_a_ledger_written_before_schema_versions_is_adopted_with_its_events(empty_postgres_url: str) -> None:
    engine = sa.create_engine(empty_postgres_url)
    with engine.begin() as conn:  # what launchbay created on connect before revisions existed
        build(conn)
    with pytest.raises(migrations.SchemaBehind, match="no launchbay schema"):
        SqlLedger(empty_postgres_url)
    migrations.upgrade(engine)
    ledger = SqlLedger(empty_postgres_url)
    release = new_release(ledger)
    assert ledger.verify_chain(release.model)[1] is None


def test_two_upgrades_at_once_apply_each_revision_once(empty_postgres_url: str) -> None:
    results: list[tuple[str | None, str]] = []
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            results.append(migrations.upgrade(sa.create_engine(empty_postgres_url)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    head = migrations.head()
    assert sorted(results, key=str) == sorted([(None, head), (head, head)], key=str)


def test_a_ledger_written_by_a_newer_launchbay_is_used_with_a_warning(
    tmp_path: Path, empty_postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = sa.create_engine(empty_postgres_url)
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '0099'"))
    SqlLedger(empty_postgres_url)
    assert "schema 0099, written by a newer launchbay" in capsys.readouterr().err


def test_the_upgrade_verb_names_a_revision_that_does_not_exist(tmp_path: Path) -> None:
    from harness import assert_clean_error, lb

    url = f"sqlite:///{tmp_path / 'l.db'}"
    assert_clean_error(lb("ledger", "upgrade", "--url", url, "--revision", "0042", cwd=tmp_path), 2, "0042")
    res = lb("ledger", "upgrade", "--url", url, "--revision", "0001", "--json", cwd=tmp_path)
    assert res.returncode == 0 and '"to": "0001"' in res.stdout, res.output
    res = lb("ledger", "version", "--url", url, "--json", cwd=tmp_path)
    assert '"current": "0001"' in res.stdout and f'"head": "{migrations.head()}"' in res.stdout, res.output


def test_the_head_known_without_alembic_is_alembics_head() -> None:
    assert migrations._script().get_current_head() == migrations.HEAD
