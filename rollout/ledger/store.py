"""The ledger: releases, their phase and step, and an append-only log of who did what, when and why.

The rollout state lives here, written *before* acting, so a controller killed at any moment resumes
from the ledger; on-call commands (rollback, abort) write here directly, with no controller needed.
SQLite under the state directory by default; any SQLAlchemy URL (PostgreSQL) for a shared one.

Every phase change goes through `move`, which checks the transition table and updates the release
only if it is still in the phase the caller saw (optimistic concurrency: two actors cannot both
move a release from the same phase), and appends the event in the same transaction. The database
enforces the rest (`ledger_schema`): one live release per model, append-only events, and a hash
chain over each model's events that `verify_chain` checks on any database.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from launchbay.config import LaunchbayConfig
from launchbay.faults import point
from launchbay.home import Home
from launchbay.rollout.engine.phases import Phase, transition
from launchbay.rollout.engine.plan import Plan
from launchbay.rollout.engine.release import (
    ConcurrentChange,
    Event,
    LedgerUnavailable,
    LiveReleaseExists,
    Release,
    UnknownRelease,
)
from launchbay.rollout.ledger import migrations
from launchbay.rollout.ledger.schema import CHAIN, ONE_LIVE, event_digest, events, head, releases
from launchbay.rollout.ledger.witness import KEY as WITNESS_KEY
from launchbay.rollout.ledger.witness import Witness

T = TypeVar("T")

LEDGER_ENV = "LAUNCHBAY_LEDGER_URL"


@dataclass(frozen=True)
class _Head:
    """The event a write appended: the chain's new head."""

    model: str
    event_id: int
    digest: str
    at: float


@dataclass(frozen=True)
class ChainBreak:
    """Where a model's event chain stops holding: the first event that does not verify."""

    event_id: int
    problem: str


class SqlLedger:
    """The Ledger seam on a SQL database (any SQLAlchemy URL)."""

    def __init__(
        self, url: str, clock: Callable[[], float] = time.time, witness: Witness | None = None
    ) -> None:
        self.url = url
        self.clock = clock  # injectable so that tests can move time without sleeping
        self.witness = witness
        """Signs each new head outside the database (`witness`); None: nothing is witnessed."""
        self.engine: Engine = sa.create_engine(driver(url), future=True)
        try:
            migrations.ensure(self.engine)
        except sa.exc.DatabaseError as exc:
            if not self._readable():
                raise self._unavailable("opened", exc) from None
            # Readable but not writable (a read-only file, a disk that went bad): reading still
            # works -- status, the gateway's routes -- and every write says what is wrong.

    def _readable(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(sa.func.count()).select_from(releases)).scalar()
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def _files_writable(self) -> bool:
        """An SQLite ledger's files can all be written now (access(2) says no for an immutable
        file, even to root); True for any other database."""
        url = sa.engine.make_url(self.url)
        if not url.drivername.startswith("sqlite") or not url.database:
            return True
        db = Path(url.database)
        present = [f for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if f.exists()]
        return all(os.access(f, os.W_OK) for f in present)

    def _unavailable(self, doing: str, exc: BaseException) -> LedgerUnavailable:
        orig = getattr(exc, "orig", None) or exc
        where = sa.engine.make_url(self.url).render_as_string(hide_password=True)
        return LedgerUnavailable(f"the ledger ({where}) cannot be {doing}: {orig}")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except (sa.exc.DatabaseError, sa.exc.InterfaceError) as exc:
            raise self._unavailable("read", exc) from None

    @staticmethod
    def default_path(home: Home) -> Path:
        """Where the embedded (SQLite) ledger lives in a state directory."""
        return home.root / "ledger.db"

    @classmethod
    def for_home(
        cls,
        home: Home,
        url: str | None = None,
        witness_dir: Path | None = None,
        witness_keys: list[Path] | None = None,
    ) -> SqlLedger:
        """The ledger at `url`, else `$LAUNCHBAY_LEDGER_URL`, else SQLite in the state directory;
        its heads witnessed in `witness_dir` (default: the state directory's `witness/`) with
        the state directory's witness key."""
        key = home.root / "keys" / WITNESS_KEY
        witness = Witness(witness_dir or home.root / "witness", key, witness_keys)
        return cls(cls.url_for(home, url), witness=witness)

    @classmethod
    def url_for(cls, home: Home, url: str | None = None) -> str:
        """`url`, else `$LAUNCHBAY_LEDGER_URL`, else the state directory's SQLite ledger."""
        url = url or os.environ.get(LEDGER_ENV)
        if url:
            return url
        home.ensure()
        return f"sqlite:///{cls.default_path(home)}"

    @classmethod
    def for_config(cls, cfg: LaunchbayConfig | None, home: Home) -> SqlLedger:
        """The project's ledger (`rollout.ledger_url`), witnessed where `rollout.witness_dir` says."""
        if cfg is None:
            return cls.for_home(home)
        r = cfg.rollout
        where = Path(cfg.resolve_path(r.witness_dir)) if r.witness_dir else None
        return cls.for_home(home, r.ledger_url, where, [Path(cfg.resolve_path(k)) for k in r.witness_keys])

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction; again on a fresh head when another writer appended the
        same chain link first (or SQLite was busy), a few times."""
        for attempt in range(12):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except sa.exc.IntegrityError as exc:
                if str(CHAIN.name) not in str(exc) and "events.prev_digest" not in str(exc):
                    raise
            except (sa.exc.DatabaseError, sa.exc.InterfaceError) as exc:
                # An SQLite connection opened while the file could not be written stays read-only
                # after it can be again: a pool holding one would refuse writes for as long as it
                # lives. Once the files are writable, start from new connections -- never before:
                # closing one while its WAL index cannot be written is a SIGBUS.
                stale = "readonly" in str(exc) and attempt < 2 and self._files_writable()
                if stale:
                    self.engine.dispose()
                elif "locked" not in str(exc) or attempt == 11:
                    raise self._unavailable("written", exc) from None
            if attempt == 11:
                raise ConcurrentChange("the ledger kept changing under this write; try again")
            time.sleep(random.uniform(0.005, 0.03) * (attempt + 1))
        raise AssertionError("unreachable")

    def create(
        self,
        *,
        model: str,
        version: str,
        author: str,
        stable_version: str | None,
        plan: Plan,
        actor: str = "launchbay",
        reason: str = "",
        evidence: dict[str, Any] | None = None,
    ) -> Release:
        """Record a new release in phase pending (with `evidence` such as its measurements).

        Raises:
            LiveReleaseExists: the model has a pending or live release (the database refuses a
                second one, however the two requests raced).
        """
        now = self.clock()

        def work(conn: Connection) -> tuple[int, _Head]:
            rid = conn.execute(
                releases.insert().values(
                    model=model,
                    version=str(version),
                    author=author,
                    stable_version=stable_version,
                    phase=Phase.PENDING.value,
                    step_index=0,
                    consecutive_errors=0,
                    plan=plan.to_json(),
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            head = self._append(
                conn,
                int(rid),
                model,
                actor,
                "created",
                None,
                Phase.PENDING,
                reason,
                {"version": str(version), "stable_version": stable_version, "author": author}
                | (evidence or {}),
            )
            return int(rid), head

        try:
            rid, head = self._write(work)
        except sa.exc.IntegrityError as exc:
            if str(ONE_LIVE.name) not in str(exc) and "releases.model" not in str(exc):
                raise
            live = next((r for r in self.releases(model) if r.phase.live or r.phase is Phase.PENDING), None)
            raise LiveReleaseExists(live) from None
        self._witnessed(head)
        point("after:created")
        return self.get(rid)

    def get(self, release_id: int) -> Release:
        """The release with this id."""
        with self._reading() as conn:
            row = conn.execute(sa.select(releases).where(releases.c.id == release_id)).mappings().first()
        if row is None:
            raise UnknownRelease(f"no release #{release_id}")
        return _release(row)

    def releases(self, model: str | None = None, live_only: bool = False) -> list[Release]:
        """Releases, newest first, optionally of one model and only the live ones."""
        q = sa.select(releases).order_by(releases.c.id.desc())
        if model:
            q = q.where(releases.c.model == model)
        with self._reading() as conn:
            rows = [_release(r) for r in conn.execute(q).mappings()]
        return [r for r in rows if r.phase.live] if live_only else rows

    def generation(self, model: str) -> int:
        """The id of the model's newest event (0 before the first): it grows with every write."""
        with self._reading() as conn:
            return _generation(conn, model)

    def snapshot(self, model: str) -> tuple[int, list[Release]]:
        """The model's generation, then its releases newest first (read after it, so they are at
        least as new as the generation says -- a world derived from them may carry it)."""
        q = sa.select(releases).where(releases.c.model == model).order_by(releases.c.id.desc())
        with self._reading() as conn:
            gen = _generation(conn, model)
            return gen, [_release(r) for r in conn.execute(q).mappings()]

    def move(
        self,
        release: Release,
        to: Phase,
        *,
        actor: str,
        action: str,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
        step_index: int | None = None,
    ) -> Release:
        """Change a release's phase (and step), appending the event, in one transaction.

        Raises:
            IllegalTransition: the transition table does not allow it.
            ConcurrentChange: the release is no longer in the phase/step `release` shows.
        """
        if to != release.phase or step_index is None:
            transition(release.phase, to)
        now = self.clock()
        step = release.step_index if step_index is None else step_index

        def work(conn: Connection) -> _Head:
            done = conn.execute(
                releases.update()
                .where(
                    releases.c.id == release.id,
                    releases.c.phase == release.phase.value,
                    releases.c.step_index == release.step_index,
                )
                .values(
                    phase=to.value,
                    step_index=step,
                    updated_at=now,
                    step_started_at=now
                    if step != release.step_index or to != release.phase
                    else release.step_started_at,
                    consecutive_errors=0,
                )
            ).rowcount
            if done != 1:
                raise ConcurrentChange(f"release #{release.id} changed since it was read")
            return self._append(
                conn,
                release.id,
                release.model,
                actor,
                action,
                release.phase,
                to,
                reason,
                {**(evidence or {}), "step_index": step},
            )

        self._witnessed(self._write(work))
        point(f"after:{action}")
        return self.get(release.id)

    def record(
        self,
        release: Release,
        *,
        actor: str,
        action: str,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
        consecutive_errors: int | None = None,
    ) -> None:
        """Append an event without a phase change (an analysis result, a refused approval, ...)."""

        def work(conn: Connection) -> _Head:
            if consecutive_errors is not None:
                conn.execute(
                    releases.update()
                    .where(releases.c.id == release.id)
                    .values(consecutive_errors=consecutive_errors, updated_at=self.clock())
                )
            return self._append(
                conn,
                release.id,
                release.model,
                actor,
                action,
                release.phase,
                release.phase,
                reason,
                evidence or {},
            )

        self._witnessed(self._write(work))
        point(f"after:{action}")

    def note(
        self, model: str, *, actor: str, action: str, reason: str = "", evidence: dict[str, Any] | None = None
    ) -> Event:
        """Append an event about the model itself (no release: a freeze), in its chain; return it.

        Raises:
            SchemaBehind: a shared ledger before schema revision 0003 cannot hold one.
        """
        at = migrations.current(self.engine)
        if at is not None and at < migrations.MODEL_EVENTS:
            raise migrations.SchemaBehind(
                f"the ledger is at schema {at}: events about a model (a freeze) need "
                f"{migrations.MODEL_EVENTS}; run `launchbay ledger upgrade` once (in a cluster: the "
                "chart's upgrade Job)"
            )

        def work(conn: Connection) -> _Head:
            return self._append(conn, None, model, actor, action, None, None, reason, evidence or {})

        head_ = self._write(work)
        self._witnessed(head_)
        point(f"after:{action}")
        with self._reading() as conn:
            row = conn.execute(sa.select(events).where(events.c.id == head_.event_id)).mappings().one()
        return event_of(row)

    def notes(self, model: str) -> list[Event]:
        """The events about the model itself (no release), in order."""
        mine = sa.and_(events.c.model == model, events.c.release_id.is_(None))
        q = sa.select(events).where(mine).order_by(events.c.id)
        with self._reading() as conn:
            return [event_of(r) for r in conn.execute(q).mappings()]

    def history(self, model: str | None = None, release_id: int | None = None) -> list[Event]:
        """The event log in order, for a model or one release."""
        q = sa.select(events).order_by(events.c.id)
        if model:
            q = q.where(events.c.model == model)
        if release_id is not None:
            q = q.where(events.c.release_id == release_id)
        with self._reading() as conn:
            return [event_of(r) for r in conn.execute(q).mappings()]

    def verify_chain(self, model: str) -> tuple[int, ChainBreak | None]:
        """Check the model's event chain: (events verified, the first break or None)."""
        q = sa.select(events).where(events.c.model == model).order_by(events.c.id)
        expected_prev = ""
        count = 0
        with self._reading() as conn:
            for row in conn.execute(q).mappings():
                if row["prev_digest"] != expected_prev:
                    what = "the event before it is missing or was changed" if count else "it is not the first"
                    return count, ChainBreak(row["id"], f"does not follow the event before it: {what}")
                if event_digest(dict(row)) != row["digest"]:
                    return count, ChainBreak(row["id"], "its content differs from what was recorded")
                expected_prev = row["digest"]
                count += 1
        return count, None

    def last_evidence(self, release: Release, action: str) -> dict[str, Any]:
        """The evidence of the release's newest event of `action` ({} when there is none)."""
        q = (
            sa.select(events.c.evidence)
            .where(events.c.release_id == release.id, events.c.action == action)
            .order_by(events.c.id.desc())
            .limit(1)
        )
        with self._reading() as conn:
            row = conn.execute(q).first()
        evidence: dict[str, Any] = json.loads(row[0]) if row is not None else {}
        return evidence

    def _append(
        self,
        conn: Connection,
        release_id: int | None,
        model: str,
        actor: str,
        action: str,
        phase_from: Phase | None,
        phase_to: Phase | None,
        reason: str,
        evidence: dict[str, Any],
    ) -> _Head:
        row: dict[str, Any] = {
            "release_id": release_id,
            "model": model,
            "at": self.clock(),
            "actor": actor,
            "action": action,
            "phase_from": phase_from.value if phase_from else None,
            "phase_to": phase_to.value if phase_to else None,
            "reason": reason,
            "evidence": json.dumps(evidence, default=str),
            "prev_digest": head(conn, model),
        }
        digest = event_digest(row)
        inserted = conn.execute(events.insert().values(**row, digest=digest))
        eid = inserted.inserted_primary_key[0]  # type: ignore[index]
        return _Head(model, int(eid), digest, row["at"])

    def _witnessed(self, head: _Head) -> None:
        """Sign the chain's new head outside the database (after the commit: a head that was
        never committed is never witnessed)."""
        if self.witness is not None:
            self.witness.witness(head.model, head.event_id, head.digest, head.at)


def _generation(conn: Connection, model: str) -> int:
    found = conn.execute(sa.select(sa.func.max(events.c.id)).where(events.c.model == model)).scalar()
    return int(found or 0)


def driver(url: str) -> str:
    """PostgreSQL through psycopg 3 (the driver launchbay installs) unless the URL names another."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def event_of(row: Any) -> Event:
    """An event from its row of the `events` table."""
    return Event(
        id=row["id"],
        release_id=row["release_id"],
        model=row["model"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        phase_from=row["phase_from"],
        phase_to=row["phase_to"],
        reason=row["reason"],
        evidence=json.loads(row["evidence"]),
        prev_digest=row["prev_digest"],
        digest=row["digest"],
    )


def _release(row: Any) -> Release:
    return Release(
        id=row["id"],
        model=row["model"],
        version=row["version"],
        author=row["author"],
        stable_version=row["stable_version"],
        phase=Phase(row["phase"]),
        step_index=row["step_index"],
        step_started_at=row["step_started_at"],
        consecutive_errors=row["consecutive_errors"],
        plan=Plan.from_json(row["plan"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
