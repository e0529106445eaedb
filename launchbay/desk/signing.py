"""Decisions from the page: the person running `launchbay ui` signs with their own key, under the
rules the CLI applies (`rollout.decisions`), and the page only offers what those rules allow.

Before showing a button the page signs a would-be statement and asks `decisions.problem` (which
records nothing); the click then goes through `decisions.approve`/`reject`, which check again and
record a refusal, exactly as `launchbay approve` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from launchbay.checks import approvals
from launchbay.checks.approvals import Decision
from launchbay.errors import LaunchbayError, Refused
from launchbay.rollout import daemon
from launchbay.rollout.engine import decisions
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release
from launchbay.rollout.wiring import Wired


@dataclass(frozen=True)
class Signer:
    """Who the page signs as, and with which key (or why it cannot)."""

    name: str
    key: str | None
    key_id: str | None
    problem: str | None

    @classmethod
    def load(cls, name: str, key: str | None = None) -> Signer:
        """`name` with their key as the CLI would find it; `problem` says why there is none."""
        source = decisions.signing_key(name, key)
        try:
            private = approvals.load_private(source)
        except ValueError as exc:
            return cls(
                name, key, None, f"{name} cannot sign: {exc} (`launchbay keys approver {name}` makes a key)"
            )
        from cryptography.hazmat.primitives import serialization

        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(name, key, approvals.key_id(public), None)


@dataclass(frozen=True)
class Offer:
    """What the page may offer for a release: the decisions allowed, or the reason for none."""

    allowed: tuple[Decision, ...]
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"allowed": list(self.allowed), "reason": self.reason}


def offer(ctx: Wired, release: Release, signer: Signer) -> Offer:
    """The decisions `signer` could make about `release` now (checked as a real one would be)."""
    if release.phase is not Phase.AWAITING_APPROVAL:
        return Offer((), None)
    if release.model != ctx.cfg.model.name:
        # A shared ledger holds other models' releases: their approvers and keys are in their own
        # project's config, not this one's.
        return Offer((), f"{release.model} is not this project's model: decide from its own project")
    if signer.problem is not None:
        return Offer((), signer.problem)
    workflow = decisions.argo_workflow(ctx, release)
    if workflow is not None:
        where = f"{workflow['namespace']}/{workflow['workflow']}"
        return Offer(
            (),
            f"{release.name} waits in Argo workflow {where}: "
            f"`launchbay approve {release.id} --argo-host ...` resumes it",
        )
    allowed: list[Decision] = []
    reason = None
    for decision in ("approve", "reject"):
        try:
            signed = decisions.sign_as(ctx, release, decision, signer.name, signer.key)
        except LaunchbayError as exc:  # the key went away since the page started
            return Offer((), exc.message)
        wrong = decisions.problem(ctx, release, signed, decision)
        if wrong is None:
            allowed.append(decision)
        elif reason is None:
            reason = wrong
    return Offer(tuple(allowed), reason if not allowed else None)


def decide(ctx: Wired, release: Release, signer: Signer, decision: Decision, reason: str) -> Release:
    """Sign and make the decision, as `launchbay approve|reject` does.

    Raises:
        Refused: a rule refused it (recorded in the ledger, with what was claimed).
    """
    if release.model != ctx.cfg.model.name:
        mine = ctx.cfg.model.name
        raise Refused(f"{decision} refused: {release.model} is not this project's model ({mine})")
    signed = decisions.sign_as(ctx, release, decision, signer.name, signer.key, reason)
    done = decisions.approve(ctx, signed) if decision == "approve" else decisions.reject(ctx, signed)
    daemon.follow(ctx)  # the world follows the decision now, as after the command
    return ctx.ledger.get(done.id)
