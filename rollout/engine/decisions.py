"""A release manager's decision: approve or reject a release waiting for approval, proven by a
signature.

A decision is a signed statement (`checks.approvals`) naming the release, its version and the
digest of its model's signature, the decision, the signer and the time. It counts only if the
signer's key is the one the config lists for them, the statement is about this release as it is
now and recent, the person is an approver, and they are not the release's author (four eyes). A
CI workflow identity may sign for a reviewer its platform checked; then the rules apply to that
reviewer. Every refusal is recorded in the ledger, with what was claimed and why it failed.
"""

from __future__ import annotations

import os
import time
from typing import Any

from launchbay.checks import approvals
from launchbay.checks.approvals import Decision, SignedStatement, Statement
from launchbay.checks.verdict import Verdict
from launchbay.errors import ConfigError, Refused, UsageError
from launchbay.identity import ran_by
from launchbay.registry import ModelRef
from launchbay.rollout.engine import freeze
from launchbay.rollout.engine.operations import Rollout, find
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import ConcurrentChange, Release, UnknownRelease

_DONE: dict[Decision, str] = {"approve": "approved", "reject": "rejected"}
"""The ledger's action for each decision."""

SIGNATURE_TAG = "launchbay.signature_sha256"
"""The registry tag holding the digest of a version's model signature (written by the sign step)."""


def pending(ctx: Rollout, ref: str) -> Release:
    """The release `ref` (an id, or a model's release awaiting approval) if it awaits a decision.

    Raises:
        UsageError: no such release number.
        Refused: it (or, by model, any of its releases) does not wait for approval.
    """
    by_model = "#" not in ref and not ref.strip().isdigit()
    if by_model:
        model = ref.strip().split("@", 1)[0]
        mine = ctx.ledger.releases(model)
        waiting = [r for r in mine if r.phase is Phase.AWAITING_APPROVAL]
        if not mine:
            raise UsageError(f"no release of {model!r} (see `launchbay status`)")
        if not waiting:
            # A decision asked at the wrong moment (exit 4), not a mistyped command (exit 2).
            raise Refused(
                f"no release of {model} awaits approval: the newest, {mine[0].name}, is {mine[0].phase.value}"
            )
        return waiting[0]
    release = find(ctx, ref)
    if release.phase is not Phase.AWAITING_APPROVAL:
        raise Refused(f"{release.name} is {release.phase.value}, not awaiting approval")
    return release


def statement_for(
    ctx: Rollout,
    release: Release,
    decision: Decision,
    signer: str,
    reason: str = "",
    on_behalf_of: str | None = None,
) -> Statement:
    """What `signer` signs to decide about `release` now."""
    version = ctx.registry.resolve(ModelRef(release.model, release.version))
    return Statement(
        release_id=release.id,
        model=release.model,
        version=release.version,
        model_signature=version.tags.get(SIGNATURE_TAG, ""),
        decision=decision,
        approver=signer,
        at=time.time(),
        reason=reason,
        on_behalf_of=on_behalf_of,
    )


def refuse(
    ctx: Rollout, release: Release, actor: str, decision: Decision, problem: str, **evidence: Any
) -> Refused:
    """Record a refused decision and return the error to raise."""
    evidence = {**evidence, "ran_by": ran_by()}  # who was at the keyboard, whatever was claimed
    ctx.ledger.record(release, actor=actor, action=f"{decision}-refused", reason=problem, evidence=evidence)
    return Refused(f"{decision} refused: {problem}")


def check(ctx: Rollout, release: Release, signed: SignedStatement, decision: Decision) -> None:
    """Refuse (and record) unless `signed` is a valid decision about `release` now.

    Raises:
        Refused: any rule is broken; the message says which.
    """
    s = signed.statement
    person = s.on_behalf_of or s.approver
    wrong = problem(ctx, release, signed, decision)
    if wrong is not None:
        raise refuse(ctx, release, person, decision, wrong, claimed=signed.to_dict())


def problem(ctx: Rollout, release: Release, signed: SignedStatement, decision: Decision) -> str | None:
    """The rule `signed` breaks as a decision about `release` now, or None; records nothing (the
    release managers' page asks before it offers a button, `check` when a decision is made)."""
    s = signed.statement
    person = s.on_behalf_of or s.approver
    if decision == "approve" and (frozen := freeze.active(ctx.cfg, ctx.ledger, release.model)) is not None:
        return f"{release.model} is frozen by {frozen.describe()}: promote after it (reject still works)"
    if person == release.author:
        return f"{person} is the author of {release.name}: someone else must {decision} it (four eyes)"
    if person not in release.plan.approvers:
        return f"{person} is not an approver (approvers: {', '.join(release.plan.approvers) or 'none'})"
    rules = ctx.cfg.rollout.approval
    keys = rules.workflows if s.on_behalf_of is not None else rules.approvers
    if s.approver not in keys:
        kind = "a workflow allowed to approve for a reviewer" if s.on_behalf_of else "an approver"
        return f"{s.approver} is not {kind} in the config (no public key for them)"
    try:
        trusted = ctx.cfg.public_key(keys[s.approver])
    except ConfigError as exc:
        return f"{s.approver}'s public key cannot be read: {exc.message}"
    verified = approvals.verify(signed, trusted)
    if verified.verdict is not Verdict.PASS:
        return verified.message
    expected = statement_for(ctx, release, decision, s.approver, s.reason, s.on_behalf_of)
    about = (s.release_id, s.model, s.version, s.model_signature, s.decision)
    wanted = (expected.release_id, expected.model, expected.version, expected.model_signature, decision)
    if about != wanted:
        return (
            f"the signed statement is about release #{s.release_id} {s.model} v{s.version} "
            f"({s.decision}), not this {decision} of {release.name} and its model signature"
        )
    age = time.time() - s.at
    if not -60 <= age <= approvals.MAX_AGE_S:
        return f"the statement was signed {age:.0f}s ago: sign a new one (at most {approvals.MAX_AGE_S:.0f}s)"
    return None


def sign_as(
    ctx: Rollout,
    release: Release,
    decision: Decision,
    name: str,
    key: str | None,
    reason: str = "",
    on_behalf_of: str | None = None,
) -> SignedStatement:
    """`name`'s signed decision, with their private key: `key` (a path or PEM), else
    $LAUNCHBAY_APPROVER_KEY, else the one `launchbay keys approver NAME` made.

    Raises:
        Refused: the person may not decide (the author, not an approver), or the key cannot be
            loaded -- in that order, recorded: the real reason comes first, not a missing key.
    """
    person = on_behalf_of or name
    if person == release.author:
        own = f"{person} is the author of {release.name}: someone else must {decision} it (four eyes)"
        raise refuse(ctx, release, person, decision, own)
    if person not in release.plan.approvers:
        approvers = ", ".join(release.plan.approvers) or "none"
        raise refuse(ctx, release, person, decision, f"{person} is not an approver (approvers: {approvers})")
    try:
        private = approvals.load_private(signing_key(name, key))
    except ValueError as exc:
        raise refuse(
            ctx, release, on_behalf_of or name, decision, f"{name} cannot sign: {exc} (approvals are signed "
            f"with the approver's own key; `launchbay keys approver {name}` makes one)",
        ) from None  # fmt: skip
    return approvals.sign(statement_for(ctx, release, decision, name, reason, on_behalf_of), private)


def signing_key(name: str, key: str | None = None) -> str:
    """Where `name`'s private key is taken from (a path, or the PEM text)."""
    return key or os.environ.get(approvals.KEY_ENV) or str(approvals.default_key(name))


def approve(ctx: Rollout, signed: SignedStatement) -> Release:
    """Record the promotion the signed statement approves (the rules checked once more here);
    the reconciler then sends it all traffic and moves `champion` to it."""
    return _decide(ctx, signed, "approve", Phase.PROMOTED)


def reject(ctx: Rollout, signed: SignedStatement) -> Release:
    """Record the end of the release the signed statement rejects; the reconciler then sends all
    traffic to stable again."""
    return _decide(ctx, signed, "reject", Phase.ABORTED)


def _decide(ctx: Rollout, signed: SignedStatement, decision: Decision, to: Phase) -> Release:
    """Check the signed decision and record it as the release's move to `to`, statement and all."""
    release = _release(ctx, signed)
    check(ctx, release, signed, decision)
    evidence = {
        "approval": signed.to_dict(),
        "analysis": ctx.ledger.last_evidence(release, "analysis"),
        "routes": ctx.target.routes().to_dict(),
        "ran_by": ran_by(),
    }
    person = signed.statement.on_behalf_of or signed.statement.approver
    try:
        return ctx.ledger.move(
            release, to, actor=person, action=_DONE[decision], reason=_said(signed), evidence=evidence
        )
    except ConcurrentChange:
        raise _lost_race(ctx, release, decision) from None


def _release(ctx: Rollout, signed: SignedStatement) -> Release:
    try:
        release = ctx.ledger.get(signed.statement.release_id)
    except UnknownRelease as exc:
        raise Refused(f"{signed.statement.decision} refused: {exc}") from None
    if release.phase is not Phase.AWAITING_APPROVAL:
        raise _lost_race(ctx, release, signed.statement.decision)
    return release


def _said(signed: SignedStatement) -> str:
    s = signed.statement
    who = f"{s.on_behalf_of} (through {s.approver})" if s.on_behalf_of else s.approver
    return f"{_DONE[s.decision]} by {who}, signed with key {signed.key_id}" + (
        f": {s.reason}" if s.reason else ""
    )


def _lost_race(ctx: Rollout, release: Release, verb: str) -> Refused:
    """The refusal for the slower of two people deciding about one release at once."""
    now = ctx.ledger.get(release.id)
    events = ctx.ledger.history(release_id=release.id)
    last = next((e for e in reversed(events) if e.phase_from != e.phase_to), events[-1])
    return Refused(
        f"{verb} refused: {release.name} changed meanwhile -- {last.actor} {last.action} it, it is now "
        f"{now.phase.value}; nothing was done"
    )


def argo_workflow(ctx: Rollout, release: Release) -> dict[str, Any] | None:
    """The Argo workflow whose approval node this release waits on (cluster pipelines), or None."""
    for event in ctx.ledger.history(release_id=release.id):
        if event.action == "argo-workflow":
            return event.evidence
    return None
