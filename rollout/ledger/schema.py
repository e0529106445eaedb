"""The ledger's tables, and the rules the database itself enforces, on SQLite and PostgreSQL alike.

* **One live release per model**: a partial unique index over the model of releases that are
  pending or live. Two `launchbay release` racing cannot both win; the loser's insert fails.
* **Append-only events**: triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).
* **A hash chain per model**: each event carries the digest of the one before it and its own,
  computed over every field (`event_digest`); a unique index over (model, previous digest) keeps
  the chain linear even with two writers on two machines -- the second append of the same link
  fails and is retried on the new head. Anyone with the database can verify it (`launchbay audit`);
  a changed, removed or reordered event breaks it at that point.

`build` (the first schema revision) creates what is missing and brings a ledger written by an
older launchbay up to date (chaining its existing events once); later changes are Alembic
revisions in `migrations/`, applied by `launchbay ledger upgrade`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from launchbay.rollout.engine.phases import Phase

LIVE = tuple(p.value for p in Phase if p.live or p is Phase.PENDING)
"""Phases of a release that holds its model: at most one such release per model."""

_LOCK = 0x1A0CB4  # "launchbay": the advisory lock key of schema changes on PostgreSQL

GENESIS = ""
"""The previous digest of a model's first event."""

meta = sa.MetaData()

releases = sa.Table(
    "releases",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False, index=True),
    sa.Column("version", sa.String(50), nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("stable_version", sa.String(50)),
    sa.Column("phase", sa.String(30), nullable=False),
    sa.Column("step_index", sa.Integer, nullable=False, default=0),
    sa.Column("step_started_at", sa.Float),
    sa.Column("consecutive_errors", sa.Integer, nullable=False, default=0),
    sa.Column("plan", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

events = sa.Table(
    "events",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # Empty for an event about the model itself (a freeze): schema revision 0003.
    sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=True, index=True),
    sa.Column("model", sa.String(200), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("phase_from", sa.String(30)),
    sa.Column("phase_to", sa.String(30)),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("evidence", sa.Text, nullable=False, default="{}"),
    sa.Column("prev_digest", sa.String(64)),
    sa.Column("digest", sa.String(64)),
)

deliveries = sa.Table(
    "deliveries",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("events.id"), nullable=False, index=True),
    sa.Column("webhook", sa.String(100), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("ok", sa.Boolean),
    sa.Column("status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("seconds", sa.Float),
    # Claimed before sending: two processes delivering at once never send the same attempt.
    sa.UniqueConstraint("event_id", "webhook", "attempt", name="one_delivery_attempt"),
)
"""Every attempt to tell a webhook about an event (`rollout.notify`): when, and how it went.
Not part of the hash chain: it says what launchbay did about the log, not what happened to a
release, and an attempt's outcome is written when it is known."""

ONE_LIVE = sa.Index(
    "one_live_release_per_model",
    releases.c.model,
    unique=True,
    sqlite_where=releases.c.phase.in_(LIVE),
    postgresql_where=releases.c.phase.in_(LIVE),
)
CHAIN = sa.Index("events_chain", events.c.model, events.c.prev_digest, unique=True)

_SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END",
]
_POSTGRES_APPEND_ONLY = [
    "CREATE OR REPLACE FUNCTION launchbay_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'the event log is append-only'; END $$",
    "CREATE OR REPLACE TRIGGER events_no_change BEFORE UPDATE OR DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION launchbay_events_append_only()",
    "CREATE OR REPLACE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION launchbay_events_append_only()",
]


def event_digest(row: Mapping[str, Any]) -> str:
    """sha256 over every field of an event as stored (the evidence as its JSON text) and the
    digest of the event before it."""
    fields = [
        row["model"],
        None if row["release_id"] is None else int(row["release_id"]),
        repr(float(row["at"])),
        row["actor"],
        row["action"],
        row["phase_from"],
        row["phase_to"],
        row["reason"],
        row["evidence"],
        row["prev_digest"],
    ]
    return hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()


def head(conn: Connection, model: str) -> str:
    """The digest of the model's newest event (GENESIS before the first)."""
    q = sa.select(events.c.digest).where(events.c.model == model).order_by(events.c.id.desc()).limit(1)
    found = conn.execute(q).scalar()
    return str(found) if found else GENESIS


def build(conn: Connection) -> None:
    """Create the tables, triggers and indexes that are missing; chain an older ledger's events.

    The body of the first schema revision (`migrations/versions/0001_base.py`), run by
    `launchbay ledger upgrade` inside its transaction and lock. It keeps creating the tables
    from `meta` as they are at that revision: a later change is a revision of its own.
    """
    sqlite = conn.dialect.name == "sqlite"
    meta.create_all(conn)
    columns = {c["name"] for c in sa.inspect(conn).get_columns("events")}
    if "digest" not in columns:
        _chain_older_ledger(conn, sqlite)
    if sqlite:
        for ddl in _SQLITE_APPEND_ONLY:
            conn.exec_driver_sql(ddl)
    elif not conn.exec_driver_sql(
        "SELECT 1 FROM pg_trigger WHERE tgname = 'events_no_truncate' AND NOT tgisinternal"
    ).first():
        for ddl in _POSTGRES_APPEND_ONLY:
            conn.exec_driver_sql(ddl)
    CHAIN.create(conn, checkfirst=True)
    try:
        with conn.begin_nested():
            ONE_LIVE.create(conn, checkfirst=True)
    except sa.exc.IntegrityError:
        # Written by a launchbay that let two releases of a model live at once: say so, and
        # keep working (the check before creating a release still applies) until one ends.
        print(
            "launchbay: the ledger holds two live releases of one model; abort one of them to "
            "let the database enforce one live release per model again",
            file=sys.stderr,
        )


def _chain_older_ledger(conn: Connection, sqlite: bool) -> None:
    """Add the chain's columns and chain the events already there, once, in their order."""
    for column in ("prev_digest", "digest"):
        conn.exec_driver_sql(f"ALTER TABLE events ADD COLUMN {column} VARCHAR(64)")
    if sqlite:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS events_no_update")
    else:
        conn.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER USER")
    heads: dict[str, str] = {}
    for row in conn.execute(sa.select(events).order_by(events.c.id)).mappings().all():
        fields = {**row, "prev_digest": heads.get(row["model"], GENESIS)}
        digest = event_digest(fields)
        conn.execute(
            events.update()
            .where(events.c.id == row["id"])
            .values(prev_digest=fields["prev_digest"], digest=digest)
        )
        heads[row["model"]] = digest
    if not sqlite:
        conn.exec_driver_sql("ALTER TABLE events ENABLE TRIGGER USER")
