"""The state directory sits beside the config in use: every verb sees one ledger from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from launchbay.home import HOME_ENV, Home
from launchbay.rollout.engine.plan import Plan
from launchbay.rollout.ledger.store import SqlLedger


def test_the_state_directory_is_beside_the_config_unless_launchbay_home_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(HOME_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert Home.resolve(tmp_path / "repo" / "launchbay.yaml").root == tmp_path / "repo" / ".launchbay"
    assert Home.resolve().root == tmp_path / ".launchbay"  # no config: the current directory
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "elsewhere"))
    assert Home.resolve(tmp_path / "repo" / "launchbay.yaml").root == tmp_path / "elsewhere"


def test_every_verb_finds_the_projects_ledger_from_another_directory(
    project: Callable[..., Path], tmp_path: Path
) -> None:
    config = project(rows=200)
    state = config.parent / ".launchbay"
    SqlLedger.for_home(Home(state)).create(
        model="fraud-detector", version="1", author="dana", stable_version=None, plan=Plan()
    )
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {HOME_ENV, "MLFLOW_TRACKING_URI"}}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "launchbay", *args, "-c", str(config)],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    history = run("history", "fraud-detector")
    assert history.returncode == 0 and "#1" in history.stdout, history.stdout + history.stderr
    assert run("keys", "init").returncode == 0
    assert (state / "keys" / "signing-key.pem").exists()
    assert list(elsewhere.iterdir()) == []  # nothing was created where the command ran
