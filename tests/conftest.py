"""Shared fixtures: an isolated state directory and a small example project on disk."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pg import empty_postgres_url, postgres_server, postgres_url  # noqa: F401 -- fixtures for every test module
from projects import write_project

from launchbay.checks.signature import generate_keypair

# Each test's `launchbay run` ends its warm steps' server with it (users keep theirs for the next run):
# no server outlives the test that started it. test_warm sets its own limit.
os.environ.setdefault("LAUNCHBAY_STEP_SERVER_IDLE", "0")


@pytest.fixture
def lb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private LAUNCHBAY_HOME (and no inherited MLflow URI) for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("LAUNCHBAY_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LAUNCHBAY_CONFIG", raising=False)
    return home


@pytest.fixture
def project(tmp_path: Path, lb_home: Path) -> Callable[..., Path]:
    """Factory: `project(rows=..., variant=..., overrides=...)` -> config path in a temp dir."""
    counter = iter(range(1000))

    def make(**kwargs: Any) -> Path:
        root = tmp_path / f"project{next(counter)}"
        root.mkdir()
        if not (lb_home / "keys" / "signing-key.pem").exists():
            generate_keypair(lb_home / "keys")  # the pipeline signs what it registers
        return write_project(root, **kwargs)

    return make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Off Linux (a data scientist's Mac, the macOS CI job), tests of Linux-only parts skip with
    the reason their `linux_only` marker gives."""
    if sys.platform == "linux":
        return
    for item in items:
        marker = item.get_closest_marker("linux_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"Linux only: {marker.args[0]}"))

