"""What people do to releases: start, approve, reject, abort, roll back -- as intents on record.

Each of these writes the ledger and nothing else: the world (routes, servers, the champion alias)
follows from the ledger by the reconciler, which the command then runs (or wakes) and reports.
So a command paused or killed right after its write has still decided -- the next reconciler pass
of anyone acts on it -- and no command can leave traffic where the ledger does not say it goes.
None of these needs a running controller. All are idempotent: rolling back twice records once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from launchbay.checks.difference import OFFLINE_TAG, OfflineDifference
from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem, LaunchbayError, Refused, UsageError
from launchbay.home import Home
from launchbay.identity import ran_by
from launchbay.registry import ModelRef, Registry, champion
from launchbay.rollout import measure
from launchbay.rollout.engine import freeze
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
from launchbay.rollout.targets.base import Target, check_version

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
            own constraint however requests race); a change freeze is in force.
        UsageError: `version` is not a registry version or already serves; a cluster target's
            version has no recorded image digest while `kubernetes.require_digest` is on.
    """
    try:
        check_version(str(version))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for r in ctx.ledger.releases(ctx.model):
        if r.phase.live or r.phase is Phase.PENDING:
            raise _one_at_a_time(r)
    freeze.refuse_when_frozen(ctx.cfg, ctx.ledger, ctx.model, f"releasing {ctx.model} version {version}")
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
    steps = Plan() if stable is None else plan(ctx.cfg.rollout, _offline(ctx, str(version)), stable)
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


def _offline(ctx: Rollout, version: str) -> OfflineDifference | None:
    """How the version's answers differed from its champion's at the model gate (registry tag)."""
    try:
        tags = ctx.registry.resolve(ModelRef(ctx.model, version)).tags
    except LaunchbayError:
        return None
    return OfflineDifference.from_json(tags.get(OFFLINE_TAG))


def _one_at_a_time(live: Release | None) -> Refused:
    if live is None:
        return Refused("another release of this model is live: one at a time")
    return Refused(
        f"release {live.name} is still {live.phase.value}: one release of a model at a time; "
        f"approve, reject or abort it first (`launchbay abort {live.id}`)"
    )


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
    """Record a release's move to ROLLED_BACK or ABORTED. Returns (release, changed).

    Already ended: nothing is recorded again (the caller's reconciler pass still checks the world).
    """
    for _ in range(5):
        if release.phase in (Phase.ROLLED_BACK, Phase.ABORTED, Phase.FAILED):
            return release, False
        try:
            release = ctx.ledger.move(
                release, to, actor=actor, action=action, reason=reason, evidence=evidence
            )
        except ConcurrentChange:
            release = ctx.ledger.get(release.id)  # someone moved it meanwhile: decide again
            continue
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
        return end(ctx, release, Phase.ABORTED, actor=actor, action="aborted", reason=reason,
                   evidence={"ran_by": ran_by()})  # fmt: skip
    evidence: dict[str, Any] = {"analysis": ctx.ledger.last_evidence(release, "analysis"), "ran_by": ran_by()}
    with contextlib.suppress(LaunchbayError):  # a gateway away must not delay on-call's decision
        evidence["routes_before"] = ctx.target.routes().to_dict()
    return end(
        ctx,
        release,
        Phase.ROLLED_BACK,
        actor=actor,
        action="rollback",
        reason=reason or "rolled back by hand",
        evidence=evidence,
    )


def abort(ctx: Rollout, ref: str, actor: str, reason: str) -> tuple[Release, bool]:
    """Stop a release that is not promoted yet (a promoted one is rolled back instead)."""
    release = find(ctx, ref)
    if release.phase is Phase.PROMOTED:
        raise Refused(f"{release.name} is promoted: use `launchbay rollback {release.model}`")
    return end(ctx, release, Phase.ABORTED, actor=actor, action="aborted", reason=reason or "aborted by hand",
               evidence={"ran_by": ran_by()})  # fmt: skip
