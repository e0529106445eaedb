"""Processes launchbay owns: started detached, found again by their record, stopped whole.

Servers outlive the command that started them (a release keeps serving after `launchbay run`
exits; on-call's `launchbay rollback` finds them again), so every process launchbay starts is
recorded in a small JSON file under the state directory: PID, its start time, port, log file.

Stopping is by process *tree*, checked: BentoML's worker runs in a session of its own, so
signalling the arbiter's process group misses it; `stop` collects every descendant first, signals
them all, and reports any survivor. A record's start time guards against PID reuse: a PID whose
process started at another time is someone else's and is never signalled. Every process started
with an `owner` carries it in its environment (inherited by its children), so `sweep` finds even a
process whose parent died and whose record is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from launchbay.files import write_private

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

OWNER_ENV = "LAUNCHBAY_OWNER"
"""Environment variable naming the state directory (and model) a launched process belongs to."""


BASE_ENV = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH", OWNER_ENV)
"""What any process launchbay starts may inherit of the environment (plus the LC_* locale)."""


def scrubbed_env(env: dict[str, str], keep: tuple[str, ...] = ()) -> dict[str, str]:
    """`env` reduced to `BASE_ENV`, the locale and the names in `keep` (no secrets by accident:
    a signing key or a database URL in the caller's environment stays with the caller)."""
    names = {*BASE_ENV, *keep}
    return {k: v for k, v in env.items() if k in names or k.startswith("LC_")}


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


def listener(port: int) -> psutil.Process | None:
    """The process listening on `port` on loopback (one of this user's), or None."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return psutil.Process(conn.pid)
        return None
    except psutil.AccessDenied:
        pass  # macOS lists the system's sockets to root only: look through this user's processes
    except psutil.Error:
        return None
    me = os.getuid()
    for proc in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["uids"] and proc.info["uids"].real == me and any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in proc.net_connections(kind="tcp")
            ):
                return proc
    return None


def die_with_parent() -> None:
    """For `preexec_fn`: on Linux the kernel SIGKILLs the child when the parent dies (not even a
    SIGKILLed parent leaves it behind). Elsewhere nothing here: the child calls `exit_with_parent`."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def exit_with_parent(interval: float = 0.5) -> None:
    """Where the kernel cannot be asked to (macOS), a thread ends this process once its parent is
    gone (it is re-parented: the parent PID changes)."""
    if sys.platform == "linux":
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="launchbay-exit-with-parent", daemon=True).start()


def created(pid: int) -> float | None:
    """When the process `pid` started (its identity beside the PID), or None when it is gone."""
    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc.create_time()
    except psutil.Error:
        return None


def alive(pid: int, created_at: float | None = None) -> bool:
    """True while the process exists, is not a zombie, and (if given) started at `created_at`."""
    started = created(pid)
    if started is None:
        return False
    return created_at is None or abs(started - created_at) < 0.01


@dataclass(frozen=True)
class ProcessRecord:
    """What launchbay remembers about a process it started."""

    pid: int
    port: int
    log: str
    started_at: float
    scaled_to_zero: bool = False
    """Stopped on purpose after being idle (scale to zero): started again on the next request."""
    created: float | None = None
    """The process's start time as the kernel counts it: a recycled PID does not match it."""

    @property
    def url(self) -> str:
        """Base URL of the HTTP server it runs."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while this very process (not a later one with the same PID) runs."""
        return alive(self.pid, self.created)

    def stop(self, timeout: float = 10.0) -> list[int]:
        """Stop the process and its whole tree; return the PIDs that survived (normally none)."""
        return stop(self.pid, timeout, self.created)

    def write(self, path: Path) -> None:
        """Store atomically (a reader never sees half a record), readable by this user only."""
        write_private(path, json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> ProcessRecord | None:
        """The record at `path`, or None when there is none (or it is unreadable)."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


_DETACH = """
import json, subprocess, sys
spec = json.load(sys.stdin)
with open(spec["log"], "ab") as out:
    child = subprocess.Popen(spec["argv"], env=spec["env"], cwd=spec["cwd"], stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                             pass_fds=spec["fds"])
print(child.pid)
"""


def start(
    argv: list[str],
    env: dict[str, str],
    log: Path,
    cwd: Path | None = None,
    owner: str | None = None,
    pass_fds: tuple[int, ...] = (),
) -> int:
    """Start a detached process writing to `log`; return its PID.

    Detached twice over: in a session of its own (a terminal's Ctrl-C or hangup does not reach it)
    and no longer a child of the caller (a short-lived middle process starts it and exits), so it
    outlives the command that started it and stopping that command's process tree leaves it be.
    With `owner`, the process and everything it starts carry it in `$LAUNCHBAY_OWNER` (`sweep`).
    `pass_fds` are inherited by the process under the same numbers (listening sockets).
    """
    import shutil
    import sys

    log.parent.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        env = {**env, OWNER_ENV: owner}
    setsid = shutil.which("setsid", path="/usr/bin:/bin")
    if setsid is not None:
        # The middle process is a shell (milliseconds; a Python one costs ~0.1 s, which is a
        # tenth of a scale-to-zero cold start): it backgrounds `setsid ARGV` -- its own session,
        # re-parented to init once the shell exits -- and prints its PID (setsid execs in place,
        # since a background job is not a group leader). The environment goes through exec.
        res = subprocess.run(
            ["/bin/sh", "-c", f'{setsid} "$@" </dev/null >>"$0" 2>&1 & echo $!', str(log), *argv],
            env=env, cwd=cwd, capture_output=True, text=True, timeout=60, pass_fds=pass_fds,
        )  # fmt: skip
        if res.returncode != 0 or not res.stdout.strip().isdigit():
            raise OSError(f"could not start {argv[0]}: {res.stderr.strip() or res.returncode}")
        return int(res.stdout.strip())
    spec: dict[str, object] = {"argv": argv, "env": env, "cwd": str(cwd) if cwd else None, "log": str(log)}
    spec["fds"] = list(pass_fds)
    # The environment travels on stdin, never on a command line others could read in /proc.
    res = subprocess.run(
        [sys.executable, "-c", _DETACH], input=json.dumps(spec), capture_output=True, text=True, timeout=60,
        pass_fds=pass_fds,
    )  # fmt: skip
    if res.returncode != 0:
        raise OSError(f"could not start {argv[0]}: {res.stderr.strip().splitlines()[-1:] or res.returncode}")
    return int(res.stdout.strip())


def launch(
    argv: list[str],
    env: dict[str, str],
    log: Path,
    port: int,
    cwd: Path | None = None,
    owner: str | None = None,
) -> ProcessRecord:
    """Start a process (see `start`) and return its record, identity included."""
    pid = start(argv, env, log, cwd, owner)
    return ProcessRecord(pid=pid, port=port, log=str(log), started_at=time.time(), created=created(pid))


def stop(pid: int, timeout: float = 10.0, created_at: float | None = None) -> list[int]:
    """Stop a process and every descendant: SIGTERM, then SIGKILL after `timeout`.

    Returns the PIDs still alive afterwards (normally none). A process whose start time is not
    `created_at` is not the one recorded: nothing is signalled.
    """
    try:
        root = psutil.Process(pid)
        if created_at is not None and abs(root.create_time() - created_at) >= 0.01:
            return []
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    return _terminate(tree, timeout)


def sweep(owner: str, timeout: float = 10.0) -> list[int]:
    """Stop every process of this user whose environment names `owner` (orphans included).

    Returns the PIDs stopped. The calling process and its ancestors are never touched.
    """
    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for proc in psutil.process_iter(["pid", "environ"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid not in mine and (proc.info.get("environ") or {}).get(OWNER_ENV) == owner:
                found.append(proc)
    _terminate(found, timeout)
    return [p.pid for p in found]


def _terminate(procs: list[psutil.Process], timeout: float) -> list[int]:
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
            if p.status() == psutil.STATUS_STOPPED:
                p.resume()  # a paused process (SIGSTOP) holds its SIGTERM until continued
    survivors = _wait_gone(procs, timeout)
    for p in survivors:
        with contextlib.suppress(psutil.Error):
            p.kill()
    return [p.pid for p in _wait_gone(survivors, 5.0)]


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited (a zombie counts as exited: detached processes are
    reaped by init, which may take its time); return those still running."""
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for p in procs:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(p.pid, os.WNOHANG)  # our own children: reaped here
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    running.append(p)
            except psutil.Error:
                pass
        if not running or time.monotonic() >= deadline:
            return running
        procs = running
        time.sleep(0.05)


def wait_http(url: str, timeout: float, pid: int | None = None) -> bool:
    """Poll `url` until it answers 200; False on timeout or when `pid` dies first."""
    import httpx  # not at import time: the gateway worker starts on this module's imports

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not alive(pid):
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
