"""A release, the events of its log, and the Ledger seam the engine reads and writes them through.

The engine (controller, reconciler, people's operations and decisions) knows the ledger only by
this protocol; `launchbay.rollout.ledger.store.SqlLedger` implements it on any SQLAlchemy URL
(SQLite by default, PostgreSQL for a shared one). Every write appends an event in the same
transaction, so the id of a model's newest event -- its *generation* -- grows with every change:
a world derived from the ledger at generation g is stale once the generation is past g.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from launchbay.errors import EnvironmentProblem
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.plan import Analysis, Approval, Pause, Plan, SetWeight, Shadow


class ConcurrentChange(Exception):
    """The release changed (phase or step) between reading it and moving it."""


class UnknownRelease(LookupError):
    """No release with that id."""


class LedgerUnavailable(EnvironmentProblem):
    """The ledger cannot be read or written (a disk error, a read-only file, a database away).

    Nothing is moved until it can be recorded: the decision that could not be written is not
    acted on, and the world stays as the ledger last said.
    """


class LiveReleaseExists(Exception):
    """The model already has a release that is pending or live (at most one, by the database)."""

    def __init__(self, live: Release | None) -> None:
        name = live.name if live is not None else "another release"
        phase = live.phase.value if live is not None else "live"
        super().__init__(f"{name} is still {phase}")
        self.live = live


@dataclass(frozen=True)
class Release:
    """One model version on its way to users."""

    id: int
    model: str
    version: str
    author: str
    stable_version: str | None
    phase: Phase
    step_index: int
    step_started_at: float | None
    consecutive_errors: int
    plan: Plan
    created_at: float
    updated_at: float

    @property
    def name(self) -> str:
        """How people refer to it: `model@vN#id`."""
        return f"{self.model}@v{self.version}#{self.id}"

    @property
    def step(self) -> Shadow | SetWeight | Analysis | Pause | Approval | None:
        """The step a live release is in (None before its first step, after its last, or when ended)."""
        if not self.phase.live or self.phase is Phase.VERIFIED or self.step_index >= len(self.plan):
            return None
        return self.plan[self.step_index]


@dataclass(frozen=True)
class Event:
    """One line of the append-only log."""

    id: int
    release_id: int | None
    """None for an event about the model itself (a freeze), not one of its releases."""
    model: str
    at: float
    actor: str
    action: str
    phase_from: str | None
    phase_to: str | None
    reason: str
    evidence: dict[str, Any]
    prev_digest: str | None = None
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


class Ledger(Protocol):
    """Releases and their append-only event log: the one source of truth of a rollout.

    Writes raise `LedgerUnavailable` when the store cannot take them; `move` raises
    `ConcurrentChange` when the release is no longer as the caller read it.
    """

    url: str
    clock: Callable[[], float]
    """The ledger's time: what its events are stamped with, and what the world is derived at."""

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
        """Record a new release in phase pending (`LiveReleaseExists` if the model has one live)."""
        ...

    def get(self, release_id: int) -> Release:
        """The release with this id (`UnknownRelease` if none)."""
        ...

    def releases(self, model: str | None = None, live_only: bool = False) -> list[Release]:
        """Releases, newest first, optionally of one model and only the live ones."""
        ...

    def snapshot(self, model: str) -> tuple[int, list[Release]]:
        """The model's generation and its releases (newest first), the releases read after the
        generation: they are at least as new as it says."""
        ...

    def generation(self, model: str) -> int:
        """The id of the model's newest event (0 before the first)."""
        ...

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
        """Change a release's phase (and step) and append the event, in one transaction."""
        ...

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
        """Append an event without a phase change."""
        ...

    def note(self, model: str, *, actor: str, action: str, reason: str = "",
             evidence: dict[str, Any] | None = None) -> Event:  # fmt: skip
        """Append an event about the model itself (no release), in its chain; return it."""
        ...

    def notes(self, model: str) -> list[Event]:
        """The events about the model itself (no release), in order."""
        ...

    def history(self, model: str | None = None, release_id: int | None = None) -> list[Event]:
        """The event log in order, for a model or one release."""
        ...

    def last_evidence(self, release: Release, action: str) -> dict[str, Any]:
        """The evidence of the release's newest event of `action` ({} when there is none)."""
        ...
