"""Warm steps: a Hera runner step started by forking a process that has already imported the
heavy libraries, instead of a new interpreter importing them again for every step.

`python -m hera.workflows.runner -e mod:fn FILE` spends most of a short step importing Great
Expectations, MLflow, scikit-learn and Hera. Here the *step server* (`step_server`) -- a fresh
interpreter, single-threaded, that imports those libraries once (`warm_preload`) -- forks one
child per step, and outlives the run: the next `launchbay run` in the same environment finds it
ready (it ends after `LAUNCHBAY_STEP_SERVER_IDLE` seconds without a step, default 900; `0` ends it
with the run; `launchbay down` stops it). The child is still a process of its own, as a pod is: it
gets its own session, the step's environment, working directory, `sys.path` and `sys.argv` as
`python -m` would set them, its stdout/stderr files, and runs the runner module as `__main__`; it
exits through the interpreter's own shutdown (threads joined, atexit handlers run). A step that
crashes, leaks, changes its directory or environment, or is SIGKILLed for its deadline touches
nothing but itself; the server never runs a step and the executor only waits for the child.

Fork is only safe from a process with one thread: a server whose imports left a thread running
refuses to serve, and steps start cold (a new interpreter each) and say why.
`LAUNCHBAY_WARM_STEPS=0` starts them cold too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from launchbay import procs
from launchbay.pipelines import step_server
from launchbay.pipelines.step_server import LOST as LOST
from launchbay.pipelines.step_server import Launch as Launch

SWITCH = "LAUNCHBAY_WARM_STEPS"
IDLE = "LAUNCHBAY_STEP_SERVER_IDLE"
DEFAULT_IDLE = 900.0
SERVER = "launchbay.pipelines.step_server"
ORPHAN_IDLE = 10.0
"""The idle limit of a server meant to end with its run, for when nobody stops it (a library user
of the executor): it ends soon after its last step."""
RUNNER = ["-m", "hera.workflows.runner"]
PRELOAD = "launchbay.pipelines.warm_preload"


class WarmProcess:
    """A step's process forked by the step server: wait for it, or kill it.

    The server, not the executor, is the child's parent and reports its exit status over the
    connection. If the server dies (killed from outside, the OOM killer) while the step runs, the
    step goes on as an orphan: it is then followed by its pid and start time until it ends, and its
    exit code read from `Launch.status`."""

    def __init__(self, conn: socket.socket, pid: int, launch: Launch) -> None:
        self._conn = conn
        self._launch = launch
        self._buffer = b""
        self.pid = pid
        self._started = procs.created(self.pid)  # with the pid, its identity
        self._orphaned = False
        self._code: int | None = None

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code (negative: killed by that signal), or None if still running at `timeout`."""
        if self._code is not None:
            return self._code
        end = None if timeout is None else time.monotonic() + timeout
        if not self._orphaned:
            reported = self._reported(timeout)
            if reported is None and not self._orphaned:
                return None
            if reported is not None:
                self._code = self._recorded(reported)
                return self._code
        while self._running():  # its server died: the step itself may still be running
            if end is not None and time.monotonic() >= end:
                return None
            time.sleep(0.1)
        self._code = self._recorded(LOST)
        return self._code

    def _reported(self, timeout: float | None) -> int | None:
        """The server's report of the exit, None by `timeout`; sets `_orphaned` when the server
        went away without one."""
        end = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if end is None else max(0.0, end - time.monotonic())
            try:
                ready, _, _ = select.select([self._conn], [], [], left)
                chunk = self._conn.recv(4096) if ready else None
            except OSError:
                chunk = b""
            if chunk is None:
                return None
            if not chunk:
                self._orphaned = True
                self._conn.close()
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        self._conn.close()
        try:
            return int(json.loads(line)["exit"])
        except (ValueError, KeyError, TypeError):
            return LOST

    def _recorded(self, reported: int) -> int:
        """The code the child wrote as it ended; else what was reported (a signal, or LOST)."""
        with contextlib.suppress(OSError, ValueError):
            return int(Path(self._launch.status).read_text())
        if reported == LOST:
            with contextlib.suppress(OSError), Path(self._launch.stderr).open("a") as err:
                err.write(
                    "\nlaunchbay: the warm-step server died while this step ran, and the step "
                    "ended without recording its exit status (killed by a signal?)\n"
                )
        return reported

    def _running(self) -> bool:
        """True while the step's own process (this pid, this start time, not a zombie) exists."""
        return self._started is not None and procs.created(self.pid) == self._started

    def poll(self) -> int | None:
        """The exit code if it has ended, else None."""
        return self.wait(0)

    def kill(self) -> None:
        """SIGKILL, as the cold path's `Popen.kill` (never a later process that reused the pid:
        until its server reaps and reports it, the pid is the step's)."""
        if self._code is not None or (self._orphaned and not self._running()):
            return
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(self.pid, signal.SIGKILL)


def unsafe_here(python: str = sys.executable) -> str | None:
    """Why warm steps cannot start on this machine (None: they can).

    macOS: a process that has loaded numpy (Accelerate) or any Apple framework is not safe to
    fork without exec (CPython's own default there is spawn since 3.8); spawning would import
    everything again per step, which is what a cold start does already, so steps start cold."""
    if python != sys.executable:
        return "the steps' interpreter is not this one"
    if sys.platform != "linux":
        return f"{sys.platform}: forking a process that loaded the platform's frameworks is unsafe there"
    return None


def idle_limit() -> float:
    """Seconds the step server waits for another step before it ends (0: it ends with the run)."""
    try:
        return max(0.0, float(os.environ.get(IDLE, DEFAULT_IDLE)))
    except ValueError:
        return DEFAULT_IDLE


class Starter:
    """Starts eligible steps warm; says why not when it cannot (then steps start cold)."""

    def __init__(self, python: str = sys.executable, preload: str = PRELOAD) -> None:
        self.python = python
        self.preload = preload
        self._broken: str | None = unsafe_here(python)
        self._socket: Path | None = None
        self._lock = threading.Lock()

    @property
    def disabled(self) -> str | None:
        """Why steps start cold now (None: they start warm)."""
        return f"{SWITCH}=0" if os.environ.get(SWITCH, "1") == "0" else self._broken

    def eligible(self, argv: list[str]) -> bool:
        """True for `python -m hera.workflows.runner ...` when warm starts are possible."""
        return self.disabled is None and len(argv) > 3 and argv[0] == self.python and argv[1:3] == RUNNER

    def prestart(self, folder: Path) -> None:
        """Find or start the step server for this environment in `folder` (the state directory's
        `steps/`) in the background: a new one imports for seconds, and what runs meanwhile
        (config, MLflow checks) is not held up."""
        if self.disabled is None:
            threading.Thread(
                target=self._ready, args=(folder,), name="launchbay-warm-prestart", daemon=True
            ).start()

    def stop(self) -> None:
        """The run is done: with an idle limit of 0 its server ends now; otherwise it stays for
        the next run and ends by itself once idle."""
        with self._lock:
            if self._socket is not None and idle_limit() == 0:
                with contextlib.suppress(OSError, ValueError):
                    step_server.request(self._socket, {"op": "stop"})
                self._socket = None

    def _ready(self, folder: Path) -> Path | None:
        with self._lock:
            if self.disabled is not None:
                return None
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            path = folder / f"{step_server.key(self.python, env)}.sock"
            if self._socket == path:
                return path
            try:
                self._socket = _serve(self.python, path, env, self.preload)
            except Exception as exc:  # no server here (platform, resources): start cold
                self._broken = f"no step server: {type(exc).__name__}: {exc}"
                self._socket = None
            return self._socket

    def start(self, launch: Launch) -> WarmProcess | None:
        """The step's process, forked warm; None when it must start cold (`disabled` says why)."""
        home = launch.env.get("LAUNCHBAY_HOME") or str(Path(launch.cwd) / ".launchbay")
        for _attempt in range(2):  # a server that reached its idle limit just now: start another
            if (path := self._ready(Path(home) / "steps")) is None:
                return None
            if (process := self._fork(path, launch)) is not None:
                return process
        return None

    def _fork(self, path: Path, launch: Launch) -> WarmProcess | None:
        try:
            conn = step_server.connect(path)
            conn.sendall(json.dumps({"op": "start", "launch": asdict(launch)}).encode() + b"\n")
            conn.settimeout(30)
            line = b""
            while not line.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                line += chunk
            pid = int(json.loads(line)["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            # The server died or ended at its idle limit just now: the next start makes a new one.
            with self._lock:
                self._socket = None
            return None
        conn.settimeout(None)
        return WarmProcess(conn, pid, launch)


def _serve(python: str, path: Path, env: dict[str, str], preload: str) -> Path:
    """The socket of a running server at `path`, started now if none answers (one starter at a
    time per socket: a file lock beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError, ValueError):
        step_server.request(path, {"op": "ping"})
        return path
    with (path.with_suffix(".lock")).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(OSError, ValueError):
            step_server.request(path, {"op": "ping"})
            return path  # another run started it while we waited for the lock
        log = path.with_suffix(".log")
        limit = idle_limit() or ORPHAN_IDLE  # 0: stopped by the run (Starter.stop), else soon
        with log.open("w") as out:
            server = subprocess.Popen(
                [python, "-m", SERVER, str(path), f"{limit:g}", preload],
                env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            code = server.poll()
            if code == step_server.NOT_SINGLE_THREADED:
                raise RuntimeError(
                    "the step server is not single-threaded after its imports: forking from it is unsafe"
                )
            if code is not None:
                raise RuntimeError(f"the step server exited {code}: {log.read_text()[-500:]}")
            with contextlib.suppress(OSError, ValueError):
                step_server.request(path, {"op": "ping"})
                _reap_later(server)
                return path
            time.sleep(0.1)
        server.kill()
        server.wait()
        raise RuntimeError("the step server did not start listening within 300 s")


def _reap_later(server: subprocess.Popen[bytes]) -> None:
    """The server is our child while we live: reap it when it ends so it never lingers as a zombie."""
    threading.Thread(target=server.wait, name="launchbay-step-server-reaper", daemon=True).start()


def stop_servers(folder: Path) -> list[int]:
    """Stop every step server with a socket in `folder` (`launchbay down`): their pids."""
    stopped = []
    for path in sorted(folder.glob("*.sock")) if folder.is_dir() else []:
        try:
            stopped.append(int(step_server.request(path, {"op": "stop"})["stopped"]))
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # nobody listens: a dead server's socket
    end = time.monotonic() + 10
    while any(procs.alive(pid) for pid in stopped) and time.monotonic() < end:
        time.sleep(0.05)
    return stopped


_STARTERS: dict[str, Starter] = {}


def starter(python: str = sys.executable) -> Starter:
    """This process's starter for `python` (one forkserver serves every executor of the process)."""
    if python not in _STARTERS:
        _STARTERS[python] = Starter(python)
    return _STARTERS[python]
