"""The one harness for running the real `launchbay` command in tests: a subprocess in a project.

    bay = Launchbay(project_dir, home=state_dir)   # a private LAUNCHBAY_HOME, no inherited MLflow URI
    res = bay.run("status", "--json")              # Result: returncode, stdout, stderr, output
    proc = bay.spawn("controller")                 # long-running: its own session, stopped by tests

`lb(*args, cwd=...)` is the short form for tests whose environment (LAUNCHBAY_HOME) is already set
by a fixture. `assert_clean_error` states the CLI's contract for mistakes: one line on stderr,
the documented exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import people


@dataclass(frozen=True)
class Result:
    """What a finished command left: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together (for assertion messages)."""
        return self.stdout + self.stderr

    def json(self) -> Any:
        """stdout parsed as JSON (the command must have succeeded)."""
        assert self.returncode == 0, self.output
        return json.loads(self.stdout)


@dataclass
class Launchbay:
    """The `launchbay` command of this interpreter, run in `cwd`.

    With `home`, the state directory is private to the test and MLflow's URI is not inherited;
    without it, the test's own environment decides (a fixture may have set LAUNCHBAY_HOME).
    """

    cwd: Path
    home: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment a command gets."""
        # The people of tests/people.py, with their keys where `approve --as NAME` looks for them.
        env = {**os.environ, "COLUMNS": "200", "XDG_CONFIG_HOME": str(people.CONFIG_HOME)}
        env.update({**self.env, **(extra or {})})
        if self.home is not None:
            env["LAUNCHBAY_HOME"] = str(self.home)
            if "MLFLOW_TRACKING_URI" not in self.env and "MLFLOW_TRACKING_URI" not in (extra or {}):
                env.pop("MLFLOW_TRACKING_URI", None)
        return env

    def run(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> Result:
        """Run a command to its end."""
        proc = subprocess.run(
            [sys.executable, "-m", "launchbay", *args],
            cwd=self.cwd,
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def spawn(
        self, *args: str, log: IO[Any] | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start a long-running command in its own session (stop it with its process group).

        Its output goes to `log`, or to a pipe the caller reads.
        """
        return subprocess.Popen(
            [sys.executable, "-m", "launchbay", *args],
            cwd=self.cwd,
            env=self.environ(env),
            stdout=log if log is not None else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def status(self) -> dict[str, Any]:
        """`launchbay status --json`, parsed."""
        doc: dict[str, Any] = self.run("status", "--json").json()
        return doc


def lb(*args: str, cwd: Path, timeout: float = 120) -> Result:
    """Run `launchbay ARGS` in `cwd` with the test's own environment."""
    return Launchbay(cwd).run(*args, timeout=timeout)


def closed_port() -> int:
    """A loopback port nothing listens on (just released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def assert_clean_error(res: Result, code: int, *texts: str) -> None:
    """A mistake's contract: exit `code`, `error: ...` on stderr naming `texts`, no traceback."""
    assert res.returncode == code, res.output
    assert "Traceback" not in res.output
    assert res.stderr.startswith("error: ")
    for t in texts:
        assert t in res.stderr, (t, res.stderr)
