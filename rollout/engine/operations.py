"""What people do to releases: start, approve, reject, abort, roll back.

None of these needs a running controller: each writes the ledger first (so the decision is on
record even if acting fails half-way), then acts on the target and the registry directly. All are
idempotent -- rolling back twice leaves the same routes and says it was already done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem, Refused, UsageError
from launchbay.home import Home
from launchbay.registry import CHAMPION, Registry, champion
from launchbay.rollout import measure
from launchbay.rollout.engine import desired as routing
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.plan import Plan, plan
from launchbay.rollout.engine.release import (
    ConcurrentChange,
    Ledger,
    LiveReleaseExists,
    Release,
    UnknownRelease,
)
from launchbay.rollout.targets import images
from launchbay.rollout.targets.base import Target

CONTROLLER = "launchbay-controller"
"""The actor name of automatic decisions in the event log."""
OUTCOME_TAG = "launchbay.rollout"
"""Registry tag on a version saying how its release ended (visible without launchbay's ledger)."""


@dataclass
class Rollout:
    """Everything a rollout decision touches."""

    cfg: LaunchbayConfig
    home: Home
    ledger: Ledger
    target: Target
    registry: Registry

    @property
    def model(self) -> str:
        """The model this project releases."""
        return self.cfg.model.name


# -- finding releases -------------------------------------------------------------------------


def find(ctx: Rollout, ref: str, phases: set[Phase] | None = None) -> Release:
    """A release by `7`, `#7`, `model@v3#7`, or a model name (its newest release in `phases`).

    Raises:
        UsageError: no such release.
    """
    text = ref.strip()
    number = text.rsplit("#", 1)[-1] if "#" in text else text
    if number.isdigit():
        try:
            return ctx.ledger.get(int(number))
        except UnknownRelease as exc:
            raise UsageError(str(exc)) from None
    model = text.split("@", 1)[0]
    for r in ctx.ledger.releases(model):
        if phases is None or r.phase in phases:
            return r
    wanted = f" in phase {', '.join(sorted(p.value for p in phases))}" if phases else ""
    raise UsageError(f"no release of {model!r}{wanted} (see `launchbay status`)")


# -- starting ---------------------------------------------------------------------------------


def create(ctx: Rollout, version: str, author: str) -> Release:
    """Record a new release of `version`; stable is whatever serves all traffic now.

    Raises:
        Refused: another release of the model is pending or live (one at a time, by the ledger's
            own constraint however requests race).
        UsageError: `version` already serves; a cluster target's version has no recorded image digest
            while `kubernetes.require_digest` is on.
    """
    for r in ctx.ledger.releases(ctx.model):
        if r.phase.live or r.phase is Phase.PENDING:
            raise _one_at_a_time(r)
    # A cluster release runs a recorded digest (never a tag that can move): refuse before recording.
    image = (
        images.require(ctx.cfg, ctx.registry, ctx.model, str(version))
        if ctx.cfg.rollout.target in images.CLUSTER_TARGETS
        else None
    )
    current = ctx.target.routes().stable
    stable = current.version if current is not None else champion(ctx.registry, ctx.model)
    if stable == str(version):
        if current is not None:
            raise UsageError(f"{ctx.model} version {version} already serves all traffic")
        stable = None  # the champion was never deployed: it is the first version to serve
    steps = Plan() if stable is None else plan(ctx.cfg.rollout)
    reason = (
        "first version to serve: nothing to compare with"
        if stable is None
        else f"candidate {version} against stable {stable}"
    )
    measured = measure.load(ctx.home, ctx.model, str(version), ctx.cfg.serving.server)
    evidence: dict[str, Any] = {"measurements": measured.to_dict()} if measured is not None else {}
    if image is not None:
        evidence["image"] = image
    try:
        return ctx.ledger.create(
            model=ctx.model,
            version=str(version),
            author=author,
            stable_version=stable,
            plan=steps,
            reason=reason,
            evidence=evidence,
        )
    except LiveReleaseExists as exc:  # created by someone else between our check and our insert
        raise _one_at_a_time(exc.live) from None


def _one_at_a_time(live: Release | None) -> Refused:
    if live is None:
        return Refused("another release of this model is live: one at a time")
    return Refused(
        f"release {live.name} is still {live.phase.value}: one release of a model at a time; "
        f"approve, reject or abort it first (`launchbay abort {live.id}`)"
    )


# -- the target's side of a decision ----------------------------------------------------------


def promote(ctx: Rollout, release: Release) -> None:
    """Act on a PROMOTED release: all traffic to it, `champion` to it. Idempotent.

    The previous stable keeps running (warm) for `rollout.grace_period`; the controller retires it.
    """
    ctx.target.set_routes(routing.wanted(release, ctx.target.backend))
    ctx.registry.set_alias(release.model, CHAMPION, release.version)
    ctx.registry.tag(release.model, release.version, OUTCOME_TAG, "promoted")


def settle(ctx: Rollout, release: Release, start_timeout: float | None = None) -> None:
    """Act on a release that ended without promotion (or was rolled back): stable serves again.

    Routes go first -- that is what users feel -- then the alias, then the candidate is drained
    and stopped. A previous stable that was already retired is started again first.
    """
    stable = release.stable_version
    if stable is not None:
        _ensure_serving(ctx, stable, start_timeout or ctx.cfg.rollout.start_timeout)
    routes = routing.wanted(release, ctx.target.backend)
    if ctx.target.routes() != routes:
        ctx.target.set_routes(routes)
    if stable is not None:
        ctx.registry.set_alias(release.model, CHAMPION, stable)
    ctx.registry.tag(release.model, release.version, OUTCOME_TAG, release.phase.value)
    ctx.target.retire(release.version)


def _ensure_serving(ctx: Rollout, version: str, timeout: float) -> None:
    if ctx.target.health(version) is Verdict.PASS:
        return
    ctx.target.deploy(ctx.model, version)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = ctx.target.health(version)
        if h is Verdict.PASS:
            return
        if h is Verdict.FAIL:
            break
        time.sleep(0.2)
    raise EnvironmentProblem(f"{ctx.model} version {version} could not be started again to serve")


# -- decisions --------------------------------------------------------------------------------


def end(
    ctx: Rollout,
    release: Release,
    to: Phase,
    *,
    actor: str,
    action: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
) -> tuple[Release, bool]:
    """Move a release to ROLLED_BACK or ABORTED, then settle it. Returns (release, changed).

    Already ended: nothing is recorded again, but the routes are settled once more (idempotent).
    """
    for _ in range(5):
        if release.phase in (Phase.ROLLED_BACK, Phase.ABORTED, Phase.FAILED):
            settle(ctx, release)
            return release, False
        try:
            release = ctx.ledger.move(
                release, to, actor=actor, action=action, reason=reason, evidence=evidence
            )
        except ConcurrentChange:
            release = ctx.ledger.get(release.id)  # someone moved it meanwhile: decide again
            continue
        settle(ctx, release)
        return release, True
    raise EnvironmentProblem(f"release #{release.id} keeps changing under us; try again")


def rollback(ctx: Rollout, actor: str, reason: str) -> tuple[Release, bool]:
    """On-call: take the model's newest release out of traffic, promoted or not.

    Raises:
        UsageError: the model has no release that could be rolled back.
    """
    candidates = [r for r in ctx.ledger.releases(ctx.model) if r.phase is not Phase.FAILED]
    if not candidates:
        raise UsageError(f"{ctx.model} has no release to roll back")
    release = candidates[0]
    if release.phase is Phase.PROMOTED and release.stable_version is None:
        raise UsageError(
            f"{release.name} is the first version of {ctx.model}: there is nothing to go back to"
        )
    if release.phase is Phase.PENDING:
        return end(ctx, release, Phase.ABORTED, actor=actor, action="aborted", reason=reason)
    return end(
        ctx,
        release,
        Phase.ROLLED_BACK,
        actor=actor,
        action="rollback",
        reason=reason or "rolled back by hand",
        evidence={
            "routes_before": ctx.target.routes().to_dict(),
            "analysis": ctx.ledger.last_evidence(release, "analysis"),
        },
    )


def abort(ctx: Rollout, ref: str, actor: str, reason: str) -> tuple[Release, bool]:
    """Stop a release that is not promoted yet (a promoted one is rolled back instead)."""
    release = find(ctx, ref)
    if release.phase is Phase.PROMOTED:
        raise Refused(f"{release.name} is promoted: use `launchbay rollback {release.model}`")
    return end(ctx, release, Phase.ABORTED, actor=actor, action="aborted", reason=reason or "aborted by hand")
