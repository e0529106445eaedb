"""The ledger's schema versions (Alembic revisions in `versions/`), and who may change them.

A shared ledger (PostgreSQL) is migrated by one command, `launchbay ledger upgrade` -- the
chart's install/upgrade Job -- never by the processes that connect to it: a process finds the
ledger at a revision and either runs (every newer revision it lacks is additive) or names the
command to run. The embedded SQLite ledger belongs to one machine, so the first launchbay to open
it after an upgrade migrates it (under a file lock): there is no one else to run a Job.

Revisions only add (expand); one that code at an older revision cannot live with says
`required = True`, and processes refuse a ledger before it. Downgrades are not offered: the
ledger's history is never dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from launchbay.errors import EnvironmentProblem

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

HEAD = "0003"
"""The newest revision, known without importing Alembic (half a second): a process that finds the
ledger at it goes on at once. A test checks it is the head of `versions/`."""
MODEL_EVENTS = "0003"
"""The revision from which an event may be about a model rather than a release (a freeze)."""
VERSION_TABLE = "launchbay_ledger_version"
"""Not Alembic's default `alembic_version`: MLflow keeps its own there when it shares the database."""
_LOCK = 0x1A0CB4  # the advisory lock of schema changes on PostgreSQL (as before versions)


class SchemaBehind(EnvironmentProblem):
    """The ledger lacks a revision this launchbay needs; `launchbay ledger upgrade` adds it."""


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    return cfg


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The revision this launchbay writes."""
    return HEAD


def current(engine: Engine) -> str | None:
    """The ledger's revision (None: no schema versions recorded)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        found = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        return str(found) if found is not None else None


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


@contextlib.contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    db = engine.url.database
    if not db or db == ":memory:":
        yield
        return
    with Path(f"{db}.migrate.lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate to `revision`, one process at a time; (before, after)."""
    sqlite = engine.dialect.name == "sqlite"
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with _sqlite_lock(engine) if sqlite else contextlib.nullcontext(), engine.begin() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        else:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK})")
        before = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    assert after is not None
    return before, after


def ensure(engine: Engine) -> None:
    """What a connecting process does: SQLite is brought to head; any other ledger is checked.

    Raises:
        SchemaBehind: a shared ledger without launchbay's schema, or before a required revision.
    """
    at = current(engine)
    if at == HEAD:
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    script = _script()
    known = {s.revision for s in script.walk_revisions()}
    if at is not None and at not in known:
        print(f"launchbay: the ledger ({_where(engine)}) is at schema {at}, written by a newer launchbay; "
              "this one works with it as long as newer revisions only add", file=sys.stderr)  # fmt: skip
        return
    missing = [s for s in script.iterate_revisions("head", at or "base")]
    if at is None or any(getattr(s.module, "required", True) for s in missing):
        has = "no launchbay schema" if at is None else f"schema {at}"
        raise SchemaBehind(
            f"the ledger ({_where(engine)}) has {has}; this launchbay needs {head()}: run "
            "`launchbay ledger upgrade` once (in a cluster: the chart's upgrade Job does) -- "
            "connecting processes never change a shared ledger's schema"
        )
    print(f"launchbay: the ledger ({_where(engine)}) is at schema {at}, {head()} is available: "
          "run `launchbay ledger upgrade`", file=sys.stderr)  # fmt: skip


def tables(engine: Engine) -> set[str]:
    """The tables the ledger's database has (for messages and tests)."""
    return set(sa.inspect(engine).get_table_names())
