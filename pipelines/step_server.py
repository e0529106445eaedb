"""The warm steps' server: one process per environment that has imported the heavy libraries once
and forks a child per step, for as many runs as come while it lives.

`python -m launchbay.pipelines.step_server SOCKET IDLE` imports `warm_preload`, checks that it is
still single-threaded (forking is only safe then), and listens on a Unix socket in the state
directory (`.launchbay/steps/`, private to its owner; a connecting process of another user is
refused by its credentials as well). It is started by the first `launchbay run` that finds none
for its environment (`key`), outlives that run, and ends by itself after IDLE seconds without a
step, on `launchbay down`, or on SIGTERM.

One connection per step, one JSON line each way:
  -> {"op": "start", "launch": {...}}      <- {"pid": N}, later {"exit": CODE} (negative: signal)
  -> {"op": "stop"}                        <- {"stopped": PID}
  -> {"op": "ping"}                        <- {"pid": PID}
The server never runs a step itself; a step's child becomes the step's own process (`_child`).
If the server dies while a step runs, the step goes on and its client follows it by pid.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VOLATILE = frozenset(
    {"PWD", "OLDPWD", "SHLVL", "_", "TERM", "COLUMNS", "LINES", "PS1", "PROMPT_COMMAND", "SSH_TTY",
     "SSH_CLIENT", "SSH_CONNECTION", "WINDOWID", "DISPLAY", "PYTEST_CURRENT_TEST", "PYTHONPATH"}
)  # fmt: skip
"""Environment variables that say where a shell is, not what a step imports: not part of the key.
(PYTHONPATH is each step's own: it is put in front of the child's sys.path, not the server's.)"""


@dataclass
class Launch:
    """What a step's process gets: its arguments after `python -m MODULE`, environment, working
    directory and output files."""

    module: str
    args: list[str]
    env: dict[str, str]
    cwd: str
    stdout: str
    stderr: str
    status: str
    """A file the child writes its exit code to as it ends: the code still reaches the executor
    when the forkserver (which otherwise reports it) died meanwhile."""


LOST = 255
"""The code of a step whose server died before it reported the exit (and what a step exiting 255 says)."""


_MAX_PATH = 100  # sun_path holds 108 bytes; longer socket paths are reached through /proc/self/fd


def key(python: str, env: dict[str, str]) -> str:
    """Which server may start a step: the same interpreter, the same installed packages (their
    folders change when pip adds, removes or upgrades one), the same launchbay sources and the same
    environment, else another server."""
    import launchbay

    h = hashlib.sha256()
    h.update(python.encode())
    paths = sysconfig.get_paths()
    for place in sorted({paths["purelib"], paths["platlib"]}):
        with contextlib.suppress(OSError):
            h.update(f"{place}:{Path(place).stat().st_mtime_ns}".encode())
    root = Path(launchbay.__file__).resolve().parent
    for top in sorted({root, *(p.resolve() for p in root.iterdir() if p.is_symlink())}):
        for folder, _dirs, files in os.walk(top, followlinks=True):
            for name in sorted(files):
                if name.endswith(".py"):
                    with contextlib.suppress(OSError):
                        h.update(f"{folder}/{name}:{(Path(folder) / name).stat().st_mtime_ns}".encode())
    h.update(json.dumps(sorted((k, v) for k, v in env.items() if k not in VOLATILE)).encode())
    return h.hexdigest()[:20]


def reachable(path: Path) -> tuple[str, int | None]:
    """An address for `path` that fits in a socket address, and a directory fd to close after use."""
    if len(str(path)) <= _MAX_PATH:
        return str(path), None
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}", fd


def connect(path: Path, timeout: float = 5.0) -> socket.socket:
    """A connection to the server at `path` (OSError when none listens)."""
    address, fd = reachable(path)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(timeout)
        conn.connect(address)
    except OSError:
        conn.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return conn


def request(path: Path, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one message and read one answer (OSError/ValueError when no server answers)."""
    with connect(path, timeout) as conn:
        conn.sendall(json.dumps(message).encode() + b"\n")
        line = conn.makefile("rb").readline()
    if not line:
        raise ConnectionError("the step server closed the connection")
    answer: dict[str, Any] = json.loads(line)
    return answer


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class Server:
    """The accept/fork/reap loop (single-threaded: the process must stay safe to fork)."""

    def __init__(self, path: Path, idle: float, base_path: list[str]) -> None:
        self.path = path
        self.idle = idle
        self.base_path = base_path
        self.children: dict[int, socket.socket | None] = {}  # None: its client hung up
        self.selector = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.last = time.monotonic()
        self.running = True
        self.inode = -1

    def bind(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a server that died left its socket
        address, fd = reachable(self.path)
        try:
            self.listener.bind(address)
        finally:
            if fd is not None:
                os.close(fd)
        self.path.chmod(0o600)
        self.inode = self.path.stat().st_ino
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)

    def serve(self, later: list[Any], load: Callable[[Any], object]) -> int:
        """Serve until stopped or idle, importing `later` one item at a time while nobody waits:
        0, or NOT_SINGLE_THREADED when an import left a thread running (forking is unsafe now)."""
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "running", False))
        code = 0
        while self.running:
            events = self.selector.select(timeout=0 if later else 0.2)
            for item, _ in events:
                if item.fileobj is self.listener:
                    self._accept()
                else:
                    self._closed(item.fileobj)  # type: ignore[arg-type]
            self._reap()
            if later and not events:
                item = later.pop(0)
                load(item)
                if threading.active_count() != 1:
                    print(f"{UNSAFE} (after {item!r})", file=sys.stderr, flush=True)
                    code = NOT_SINGLE_THREADED
                    break
            if not self.children and time.monotonic() - self.last > self.idle:
                break
        self.close()
        return code

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()  # only our own socket, never a newer server's
        with contextlib.suppress(OSError):
            self.listener.close()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.last = time.monotonic()
        if _peer_uid(conn) != os.getuid():
            conn.close()  # another user: nothing here runs for them
            return
        try:
            conn.setblocking(True)
            conn.settimeout(10)
            line = conn.makefile("rb").readline()
            message = json.loads(line)
            op = message.get("op")
        except (OSError, ValueError, AttributeError):
            conn.close()
            return
        if op == "ping":
            self._say(conn, {"pid": os.getpid()})
            conn.close()
        elif op == "stop":
            self._say(conn, {"stopped": os.getpid()})
            conn.close()
            self.running = False
        elif op == "start":
            self._start(conn, message.get("launch") or {})
        else:
            self._say(conn, {"error": f"unknown op {op!r}"})
            conn.close()

    def _start(self, conn: socket.socket, fields: dict[str, Any]) -> None:
        try:
            launch = Launch(**fields)
        except TypeError as exc:
            self._say(conn, {"error": f"bad launch: {exc}"})
            conn.close()
            return
        pid = os.fork()
        if pid == 0:  # the step's process: nothing of the server's survives in it
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                for sock in (self.listener, conn, *self.children.values()):
                    if sock is not None:
                        sock.close()
                self.selector.close()
                _child(launch, self.base_path)
            finally:
                os._exit(LOST)
        self.children[pid] = conn
        self._say(conn, {"pid": pid})
        # Readable from now on means the client went away (its run ended or was killed).
        self.selector.register(conn, selectors.EVENT_READ)

    def _closed(self, conn: socket.socket) -> None:
        """A client hung up before its step ended: the step goes on (the client killed it if it
        wanted it gone); its end is reaped but no longer reported."""
        with contextlib.suppress(OSError):
            if conn.recv(1, socket.MSG_PEEK):
                return
        self.selector.unregister(conn)
        for pid, c in list(self.children.items()):
            if c is conn:
                self.children[pid] = None
        conn.close()

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            self.last = time.monotonic()
            if conn is not None:
                self._say(conn, {"exit": os.waitstatus_to_exitcode(status)})
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(conn)
                conn.close()

    @staticmethod
    def _say(conn: socket.socket, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(message).encode() + b"\n")


def _child(launch: Launch, base_path: list[str]) -> None:
    """In the forked child: become the step's process, run the module as `__main__`, exit."""
    os.setsid()  # its own session and process group, as the cold path's start_new_session
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, launch.stdout), (2, launch.stderr)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, closefd=False, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    os.environ.clear()
    os.environ.update(launch.env)
    os.chdir(launch.cwd)
    extra = [p for p in launch.env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [launch.cwd, *extra, *base_path]
    sys.argv = [launch.module, *launch.args]
    code = 0
    try:
        runpy.run_module(launch.module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    # What the interpreter does at exit: wait for the step's threads, run its atexit handlers
    # (MLflow flushes asynchronous logging there), flush the streams.
    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
        code = code or 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream: nothing more to say
            stream.flush()
    with contextlib.suppress(OSError):
        Path(launch.status).write_text(str(code))
    os._exit(code)


def _exit_code(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


NOT_SINGLE_THREADED = 3
"""The server's exit code when its imports left a thread running (forking it would be unsafe)."""
UNSAFE = "the preloaded libraries left a thread running: forking from it is unsafe"


def main(argv: list[str]) -> int:
    """`python -m launchbay.pipelines.step_server SOCKET IDLE_SECONDS [PRELOAD]` (PRELOAD: a module
    name or a .py file defining THREADS_AFTER_IMPORT)."""
    path, idle = Path(argv[0]), float(argv[1])
    preload = argv[2] if len(argv) > 2 else "launchbay.pipelines.warm_preload"
    # What a fresh `python -m` would have on its path, minus the working directory: each step's
    # own directory and PYTHONPATH are put in front of it in the child.
    base_path = list(sys.path[1:])
    import importlib

    if preload.endswith(".py"):  # a file (tests use a light one)
        import importlib.util

        spec = importlib.util.spec_from_file_location("launchbay_step_preload", preload)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(preload)
    threads = getattr(module, "THREADS_AFTER_IMPORT", None)
    if threads != 1 or threading.active_count() != 1:
        print(UNSAFE, file=sys.stderr)
        return NOT_SINGLE_THREADED
    server = Server(path, idle, base_path)
    server.bind()
    print(f"launchbay step server {os.getpid()} on {path}, idle {idle:g} s", file=sys.stderr, flush=True)
    return server.serve(list(getattr(module, "LATER", ())), _load)


def _load(item: str | Callable[[], object]) -> None:
    """Import one item of the preload's LATER (or call it); one this installation lacks is skipped."""
    import importlib

    with contextlib.suppress(ImportError):
        item() if callable(item) else importlib.import_module(item)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
