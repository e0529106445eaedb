"""Processes the local target owns: start detached, find again by PID file, stop by PID.

Servers outlive the command that started them (a release keeps serving after `launchbay run`
exits; on-call's `launchbay rollback` finds them again), so every process launchbay starts is
recorded in a small JSON file under the state directory: PID, port, log file. Each is started in
its own session, so stopping it by PID also stops its children (BentoML's workers).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """True when nothing listens on `port` on loopback.

    Sockets in TIME_WAIT (left by a server that just died) do not count: a server binds such a
    port with SO_REUSEADDR, so the probe must too, or a restarted server moves to another port.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_port_free(port: int, timeout: float) -> bool:
    """Wait up to `timeout` s for `port` to become free; True if it did.

    A server killed mid-connection leaves its accepted sockets closing (FIN_WAIT) until each
    client closes its side, usually within milliseconds: a restart that waits a little keeps the
    address clients use instead of moving to another port.
    """
    deadline = time.monotonic() + timeout
    while not port_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child answers kill(0) but is dead for our purposes
        with Path(f"/proc/{pid}/stat").open() as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@dataclass(frozen=True)
class ProcessRecord:
    """What launchbay remembers about a process it started."""

    pid: int
    port: int
    log: str
    started_at: float
    scaled_to_zero: bool = False
    """Stopped on purpose after being idle (scale to zero): started again on the next request."""

    @property
    def url(self) -> str:
        """Base URL of the HTTP server it runs."""
        return f"http://127.0.0.1:{self.port}"

    def write(self, path: Path) -> None:
        """Store atomically (a reader never sees half a record)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> ProcessRecord | None:
        """The record at `path`, or None when there is none (or it is unreadable)."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def start(argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> int:
    """Start a detached process (own session) writing to `log`; return its PID."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid


def stop(pid: int, timeout: float = 10.0) -> None:
    """Stop a process started by `start` and its children: SIGTERM, then SIGKILL after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)  # its own session: the group id is its PID
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not alive(pid):
                return
            time.sleep(0.05)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_http(url: str, timeout: float, pid: int | None = None) -> bool:
    """Poll `url` until it answers 200; False on timeout or when `pid` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None:
            _reap(pid)
            if not alive(pid):
                return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        time.sleep(0.1)
    return False


def tail(path: Path | str, lines: int = 15) -> str:
    """The last lines of a log file (what people need to see when a server died)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
