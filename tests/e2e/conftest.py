"""Helpers for end-to-end tests: run the real `launchbay` command in a project directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def launchbay(lb_home: Path) -> Callable[..., Result]:
    """Run `python -m launchbay ARGS` in `cwd` with the test's private LAUNCHBAY_HOME."""

    def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "launchbay", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def status(launchbay: Callable[..., Result], cwd: Path) -> dict[str, Any]:
    res = launchbay("status", "--json", cwd=cwd)
    assert res.code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc
