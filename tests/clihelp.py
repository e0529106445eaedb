"""Running the real `launchbay` command in tests, and what a clean error looks like."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def lb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launchbay", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def assert_clean_error(res: subprocess.CompletedProcess[str], code: int, *texts: str) -> None:
    assert res.returncode == code, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert res.stderr.startswith("error: ")
    for t in texts:
        assert t in res.stderr, (t, res.stderr)
