"""The rollout verbs' contract when there is nothing to act on: clear messages, exit codes, no trace."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness import assert_clean_error, lb

from launchbay.home import Home
from launchbay.rollout.engine.plan import Plan
from launchbay.rollout.ledger.store import SqlLedger


def test_history_of_a_model_without_releases_says_so(project: Callable[..., Path], lb_home: Path) -> None:
    config = project(rows=200)
    res = lb("history", "fraud-detector", cwd=config.parent)
    assert res.returncode == 0 and "no releases yet" in res.stdout
    assert json.loads(lb("history", "fraud-detector", "--json", cwd=config.parent).stdout) == []


def test_approving_an_unknown_release_is_a_usage_error(project: Callable[..., Path], lb_home: Path) -> None:
    config = project(rows=200)
    assert_clean_error(lb("approve", "#42", "--as", "alice", cwd=config.parent), 2, "no release #42")
    assert_clean_error(
        lb("approve", "fraud-detector", "--as", "alice", cwd=config.parent),
        2,
        "no release of 'fraud-detector'",
    )


def test_approving_a_release_that_does_not_wait_for_approval_is_refused(
    project: Callable[..., Path], lb_home: Path
) -> None:
    config = project(rows=200)
    ledger = SqlLedger.for_home(Home(lb_home))
    r = ledger.create(model="fraud-detector", version="2", author="dana", stable_version="1", plan=Plan())
    assert_clean_error(
        lb("approve", str(r.id), "--as", "alice", cwd=config.parent), 4, "pending, not awaiting"
    )
    # By model name with nothing waiting: the wrong moment (4), not a mistyped command (2).
    assert_clean_error(
        lb("approve", "fraud-detector", "--as", "alice", cwd=config.parent),
        4,
        f"no release of fraud-detector awaits approval: the newest, {r.name}, is pending",
    )


def test_rollback_with_nothing_released_is_a_usage_error(project: Callable[..., Path], lb_home: Path) -> None:
    config = project(rows=200)
    assert_clean_error(
        lb("rollback", "fraud-detector", cwd=config.parent), 2, "fraud-detector has no release to roll back"
    )
    assert_clean_error(
        lb("rollback", "other-model", cwd=config.parent), 2, "this project's model is fraud-detector"
    )


def test_keys_approver_keeps_the_private_key_in_the_persons_config_and_writes_the_public_one(
    tmp_path: Path,
) -> None:
    from harness import Launchbay

    me = tmp_path / "me"
    bay = Launchbay(tmp_path, env={"XDG_CONFIG_HOME": str(me)})
    made = bay.run("keys", "approver", "erin", "--public-key", "approvers/erin.pub")
    assert made.returncode == 0, made.output
    private = me / "launchbay" / "approvers" / "erin.pem"
    assert (private.stat().st_mode & 0o777) == 0o600 and (tmp_path / "approvers" / "erin.pub").exists()
    (tmp_path / "approvers" / "erin.pub").unlink()
    again = bay.run("keys", "approver", "erin", "--public-key", "approvers/erin.pub")
    assert again.returncode == 0 and "already exists" in again.stdout
    assert (tmp_path / "approvers" / "erin.pub").read_bytes() == private.with_suffix(".pub").read_bytes()


def test_audit_of_a_model_never_released_finds_nothing_wrong(project: Callable[..., Path]) -> None:
    config = project(rows=200)
    res = lb("audit", "fraud-detector", "--json", cwd=config.parent)
    assert res.returncode == 0, res.output
    assert json.loads(res.stdout) == {
        "model": "fraud-detector",
        "ok": True,
        "events": 0,
        "verified": 0,
        "chain_break": None,
        "decisions": [],
        "witnessed": 0,
        "witness_problems": [],
        "unwitnessed": [],
        "first_problem": "",
    }
