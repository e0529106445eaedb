"""Release managers for tests: each with a key pair of their own (made once per test process).

approvers("alice", "bob")             -> {"alice": "/tmp/.../alice.pub", ...} for the config
approve(ctx, "7", "alice")            -> alice signs, the promotion is recorded and the world follows
signed(ctx, release, "bob", key_of="alice")  -> bob's name, alice's key: a forgery
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from launchbay.checks import approvals
from launchbay.checks.approvals import Decision, SignedStatement
from launchbay.rollout.engine import decisions
from launchbay.rollout.engine.operations import Rollout
from launchbay.rollout.engine.reconciler import Reconciler
from launchbay.rollout.engine.release import Release

CONFIG_HOME = Path(tempfile.mkdtemp(prefix="launchbay-people-"))
"""An $XDG_CONFIG_HOME holding everyone's keys where `launchbay approve --as NAME` looks for them."""


def key(name: str) -> Path:
    """`name`'s private key (made on first use), where the CLI finds it with CONFIG_HOME."""
    private = CONFIG_HOME / "launchbay" / "approvers" / f"{name}.pem"
    if not private.exists():
        approvals.generate(private, private.with_suffix(".pub"))
    return private


def public(name: str) -> Path:
    return key(name).with_suffix(".pub")


def approvers(*names: str) -> dict[str, str]:
    """The config's `approval.approvers` for these people."""
    return {n: str(public(n)) for n in names}


def signed(
    ctx: Rollout,
    release: Release,
    name: str,
    decision: Decision = "approve",
    key_of: str | None = None,
    **statement: Any,
) -> SignedStatement:
    """`name`'s decision about `release`, signed with `key_of`'s key (default: their own)."""
    made = decisions.statement_for(ctx, release, decision, name, **statement)
    return approvals.sign(made, approvals.load_private(key(key_of or name)))


def approve(ctx: Rollout, ref: str, name: str, **statement: Any) -> Release:
    """`name` approves the release `ref` with their own key; the world follows (as the command has it)."""
    decided = decisions.approve(ctx, signed(ctx, decisions.pending(ctx, ref), name, **statement))
    Reconciler(ctx).converge()
    return decided


def reject(ctx: Rollout, ref: str, name: str, reason: str = "") -> Release:
    """`name` rejects the release `ref` with their own key; the world follows."""
    decided = decisions.reject(ctx, signed(ctx, decisions.pending(ctx, ref), name, "reject", reason=reason))
    Reconciler(ctx).converge()
    return decided


PEOPLE = ("alice", "bob", "dana", "mallory", "ci")
"""Everyone the tests know, keys made up front (a launchbay command run by a test finds them)."""
for _name in PEOPLE:
    key(_name)
