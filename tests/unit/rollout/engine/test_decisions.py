"""Approvals people cannot forge: a decision counts only when signed by the approver's own key,
about this release as it is now; every refusal is on record with what was claimed."""

from __future__ import annotations

import dataclasses
import getpass
import socket
from pathlib import Path

import people
import pytest
from rollout_fakes import World, world

from launchbay.checks import approvals
from launchbay.errors import Refused
from launchbay.rollout.engine import decisions
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release


def _awaiting(tmp_path: Path) -> tuple[World, Release]:
    w = world(tmp_path)
    w.registry.tags["2"] = {decisions.SIGNATURE_TAG: "f" * 64}  # the sign step's record of v2
    from launchbay.rollout.engine import operations

    r = w.ticks(operations.create(w.ctx, "2", "dana"), 40)
    assert r.phase is Phase.AWAITING_APPROVAL
    return w, r


def _refused(w: World, r: Release, signed: approvals.SignedStatement, match: str) -> None:
    with pytest.raises(Refused, match=match):
        decisions.approve(w.ctx, signed)
    assert w.ledger.get(r.id).phase is Phase.AWAITING_APPROVAL
    last = w.ledger.history(release_id=r.id)[-1]
    assert last.action == "approve-refused" and last.evidence["claimed"] == signed.to_dict()
    # Whoever claimed what, the account that ran it is on record too.
    assert last.evidence["ran_by"]["os_user"] == getpass.getuser()
    assert last.evidence["ran_by"]["host"] == socket.gethostname()


def test_someone_signing_with_their_own_key_as_an_approver_is_refused_and_recorded(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    forged = people.signed(w.ctx, r, "bob", key_of="dana")  # the author, claiming to be bob
    _refused(w, r, forged, r"approve refused: signed with key sha256:\w+, not with bob's configured key")
    assert w.ledger.history(release_id=r.id)[-1].actor == "bob"  # who was claimed, on record


def test_a_statement_changed_after_signing_or_about_another_release_is_refused(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    honest = people.signed(w.ctx, r, "alice")
    edited = dataclasses.replace(honest, statement=dataclasses.replace(honest.statement, reason="lgtm!"))
    _refused(w, r, edited, "the signature does not match the statement")
    other_model = people.signed(w.ctx, r, "alice")
    other_model = approvals.sign(
        dataclasses.replace(other_model.statement, model_signature="0" * 64),
        approvals.load_private(people.key("alice")),
    )
    _refused(w, r, other_model, "not this approve of fraud-detector@v2#1 and its model signature")
    rejecting = people.signed(w.ctx, r, "alice", "reject")
    _refused(w, r, rejecting, r"is about release #1 fraud-detector v2 \(reject\)")


def test_an_old_statement_is_refused(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    stale = people.signed(w.ctx, r, "alice")
    old = approvals.sign(
        dataclasses.replace(stale.statement, at=stale.statement.at - 3600),
        approvals.load_private(people.key("alice")),
    )
    _refused(w, r, old, r"signed 3600s ago: sign a new one")


def test_a_valid_approval_is_kept_signed_in_the_ledger_and_verifies_later(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    signed = people.signed(w.ctx, r, "alice", reason="canary looks good")
    r = decisions.approve(w.ctx, signed)
    assert r.phase is Phase.PROMOTED
    event = w.ledger.history(release_id=r.id)[-1]
    assert event.actor == "alice" and event.reason.startswith("approved by alice, signed with key sha256:")
    kept = approvals.SignedStatement.from_dict(event.evidence["approval"])
    assert kept == signed and approvals.verify(kept, people.public("alice").read_bytes()).verdict.ok


def test_a_workflow_identity_approves_for_the_reviewer_its_platform_checked(tmp_path: Path) -> None:
    from rollout_fakes import config

    cfg = config(
        approval={
            "required": True,
            "approvers": people.approvers("alice", "bob"),
            "workflows": {"github-production": str(people.public("ci"))},
        }
    )
    w = world(tmp_path, cfg)
    from launchbay.rollout.engine import operations

    r = w.ticks(operations.create(w.ctx, "2", "dana"), 40)
    author_via_ci = people.signed(w.ctx, r, "github-production", key_of="ci", on_behalf_of="dana")
    _refused(w, r, author_via_ci, "dana is the author")
    bob_self = people.signed(w.ctx, r, "github-production", key_of="bob", on_behalf_of="bob")
    _refused(w, r, bob_self, "not with github-production's configured key")
    via_ci = people.signed(w.ctx, r, "github-production", key_of="ci", on_behalf_of="bob")
    r = decisions.approve(w.ctx, via_ci)
    event = w.ledger.history(release_id=r.id)[-1]
    assert r.phase is Phase.PROMOTED and event.actor == "bob"
    assert "approved by bob (through github-production)" in event.reason


@pytest.mark.parametrize(
    ("person", "reason"),
    [("dana", "dana is the author of .*four eyes"), ("mallory", "mallory is not an approver")],
)
def test_the_real_reason_comes_before_a_missing_key(tmp_path: Path, person: str, reason: str) -> None:
    w, r = _awaiting(tmp_path)
    nowhere = str(tmp_path / "no-such-key.pem")  # neither of them has a key on this machine
    with pytest.raises(Refused, match=reason):
        decisions.sign_as(w.ctx, r, "approve", person, nowhere)
    last = w.ledger.history(release_id=r.id)[-1]
    assert last.action == "approve-refused" and last.actor == person and "cannot sign" not in last.reason
