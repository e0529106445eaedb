"""The world a model's releases call for, derived from the ledger alone: one pure function.

Everything launchbay changes in the world -- where traffic goes, which servers run, which
version holds the `champion` alias, when the previous stable stops -- follows from the model's
releases as the ledger has them and from the clock. Nothing else is consulted and nothing is
remembered, so any process that reads the same ledger derives the same world, and a change that
was recorded but not yet acted on (the writer died between the two) is acted on by whoever
derives the world next (`reconciler`). The newest release decides:

| newest release         | traffic                   | servers that must run                      |
|------------------------|---------------------------|--------------------------------------------|
| none                   | nothing                   | none                                       |
| pending                | stable alone              | stable                                     |
| verified               | stable alone              | stable, the candidate (started once only)  |
| shadow/canary/approval | as its current step asks  | stable, the candidate                      |
| promoted               | the release alone         | it; the previous stable until its grace ends |
| rolled back/aborted/failed | stable alone (none for a first version) | stable                  |

Older releases need nothing: a previous stable that a newer release superseded is retired at
once (only the newest release can be rolled back, so it could never serve again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release
from launchbay.rollout.targets.base import Backend, Routes

_SPLIT = {Phase.SHADOW, Phase.CANARY, Phase.AWAITING_APPROVAL}
"""Phases in which traffic is split between (or mirrored from) stable and the candidate."""
_ENDED = {Phase.ROLLED_BACK, Phase.ABORTED, Phase.FAILED}


@dataclass(frozen=True)
class Desired:
    """What must be true of one model's world now."""

    model: str
    generation: int
    """The ledger generation this was derived from (the id of the model's newest event)."""
    stable: str | None = None
    canary: str | None = None
    canary_weight: int = 0
    mirror: bool = False
    baseline: str | None = None
    """The version a fresh baseline server runs (stable's), taking the candidate's share."""
    serving: frozenset[str] = frozenset()
    """Versions whose servers must run."""
    candidate: str | None = None
    """Among `serving`, the version started once only: a candidate that dies is judged, not revived."""
    retire_at: dict[str, float] = field(default_factory=dict)
    """Versions kept warm for a while (the previous stable after a promotion), and until when."""
    champion: str | None = None
    """The version the registry's `champion` alias must name (None: leave it as it is)."""
    outcome: tuple[str, str] | None = None
    """(version, how its release ended) once the newest release is final: a tag in the registry."""
    release: Release | None = None
    """The newest release, which all of this follows."""

    def routes(
        self, backend: Callable[[str], Backend], baseline: Callable[[str], Backend] | None = None
    ) -> Routes:
        """These routes with each version's backend (`backend`, `baseline` may raise for one not
        deployed)."""
        return Routes(
            stable=backend(self.stable) if self.stable is not None else None,
            canary=backend(self.canary) if self.canary is not None else None,
            canary_weight=self.canary_weight,
            mirror=self.mirror,
            baseline=baseline(self.baseline) if self.baseline is not None and baseline is not None else None,
        )

    def same_routes(self, routes: Routes) -> bool:
        """True when `routes` send traffic as these do (by version: backends may move)."""
        return (
            (routes.stable.version if routes.stable else None) == self.stable
            and (routes.canary.version if routes.canary else None) == self.canary
            and routes.canary_weight == self.canary_weight
            and routes.mirror == self.mirror
            and (routes.baseline.version if routes.baseline else None) == self.baseline
        )

    def same_world(self, other: Desired) -> bool:
        """True when `other` calls for this very world (whatever generation either was derived at)."""
        def world(d: Desired) -> tuple[object, ...]:
            return (d.stable, d.canary, d.canary_weight, d.mirror, d.baseline, d.serving, d.candidate,
                    d.champion, d.outcome, d.retire_at)  # fmt: skip

        return world(self) == world(other)

    @property
    def wake_at(self) -> float | None:
        """When this world changes by itself (a warm period ends), or None."""
        return min(self.retire_at.values(), default=None)

    def describe(self) -> str:
        """The routes in words: `v1 100%`, `v1 80% / v2 20%`, `v1, mirrored to v2`."""
        if self.stable is None:
            return "no version serves"
        if self.canary is None:
            return f"v{self.stable} serves all traffic"
        if self.mirror and not self.canary_weight:
            return f"v{self.stable} serves all traffic, mirrored to v{self.canary}"
        if self.baseline is not None:
            w = self.canary_weight
            return f"v{self.stable} {100 - 2 * w}% / baseline v{self.baseline} {w}% / v{self.canary} {w}%"
        return f"v{self.stable} {100 - self.canary_weight}% / v{self.canary} {self.canary_weight}%"


def desired(
    model: str, generation: int, releases: Sequence[Release], now: float, grace_period: float
) -> Desired:
    """The world `releases` (the model's, newest first) call for at time `now`.

    Args:
        grace_period: how long the previous stable stays warm after a promotion (seconds).
    """
    newest = releases[0] if releases else None
    if newest is None:
        return Desired(model, generation)
    stable = newest.stable_version
    if newest.phase is Phase.PROMOTED:
        promoted_at = newest.step_started_at or newest.updated_at
        keep: dict[str, float] = {}
        if stable is not None and stable != newest.version:
            keep = {stable: promoted_at + grace_period}
        warm = {v for v, until in keep.items() if now < until}
        return Desired(
            model,
            generation,
            stable=newest.version,
            serving=frozenset({newest.version, *warm}),
            retire_at=keep,
            champion=newest.version,
            outcome=(newest.version, Phase.PROMOTED.value),
            release=newest,
        )
    base = frozenset({stable}) if stable is not None else frozenset()
    if newest.phase in _ENDED:
        return Desired(
            model,
            generation,
            stable=stable,
            serving=base,
            champion=stable,
            outcome=(newest.version, newest.phase.value),
            release=newest,
        )
    if newest.phase is Phase.PENDING:
        return Desired(model, generation, stable=stable, serving=base, champion=stable, release=newest)
    # verified or live: the candidate runs beside stable
    split = newest.plan.traffic(newest.step_index) if newest.phase in _SPLIT and stable else None
    return Desired(
        model,
        generation,
        stable=stable,
        canary=newest.version if split is not None else None,
        canary_weight=split.canary_weight if split is not None else 0,
        mirror=split.mirror if split is not None else False,
        baseline=stable if split is not None and split.baseline else None,
        serving=base | {newest.version},
        candidate=newest.version,
        champion=stable,
        release=newest,
    )
