"""The rollout verbs' contract when there is nothing to act on: clear messages, exit codes, no trace."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness import assert_clean_error, lb

from launchbay.home import Home
from launchbay.rollout.ledger import Ledger
from launchbay.rollout.spec import Plan


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
        "no release of 'fraud-detector' in phase awaiting-approval",
    )


def test_approving_a_release_that_does_not_wait_for_approval_is_refused(
    project: Callable[..., Path], lb_home: Path
) -> None:
    config = project(rows=200)
    ledger = Ledger.for_home(Home(lb_home))
    r = ledger.create(model="fraud-detector", version="2", author="dana", stable_version="1", plan=Plan())
    assert_clean_error(
        lb("approve", str(r.id), "--as", "alice", cwd=config.parent), 4, "pending, not awaiting"
    )


def test_rollback_with_nothing_released_is_a_usage_error(project: Callable[..., Path], lb_home: Path) -> None:
    config = project(rows=200)
    assert_clean_error(
        lb("rollback", "fraud-detector", cwd=config.parent), 2, "fraud-detector has no release to roll back"
    )
    assert_clean_error(
        lb("rollback", "other-model", cwd=config.parent), 2, "this project's model is fraud-detector"
    )
