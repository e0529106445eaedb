"""The local gateway's supervisor: it holds the gateway's sockets and restarts a worker that dies.

    python -m launchbay.rollout.local.supervisor --dir DIR --home ROOT --model M --port P

The supervisor binds the client port and a loopback admin port itself and hands both sockets to
a worker process (`launchbay.rollout.local.worker`), which serves them. When the worker dies -- a
crash, an OOM kill, a SIGKILL -- the sockets stay open in the supervisor: connections arriving
meanwhile wait in the listen queue, and a new worker (routes re-derived from the ledger) is
serving them within a second, on the same port. The new worker is a standby started beforehand,
its imports done (they take over a second on a loaded 2-core machine), waiting on a pipe; it
takes over when told why, and another standby is started behind it. Workers die with the
supervisor (PR_SET_PDEATHSIG), so a killed supervisor never leaves a worker behind.

The supervisor itself may die too. The controller (always on for the local target) asks it for
copies of its two listening sockets over `DIR/gateway.sockets` (a Unix socket, SCM_RIGHTS) and
keeps them: the port never closes, and when the supervisor is gone the controller starts a new
one on the very same sockets (`--client-fd`, `--admin-fd`) -- clients that connect meanwhile wait
in the queue instead of being refused. With no controller, the next launchbay command that
touches the target starts a new supervisor on the same port.

`DIR/gateway.json` is the record: the worker's PID (`pid`: the process serving clients) and start
time, the supervisor's, both ports, restarts, why the last worker ended, and a heartbeat written
every second (how long ago it was last alive, if it dies). `DIR/gateway.token` (0600) is the
admin channel's token.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from launchbay import procs
from launchbay.files import write_private

RECORD = "gateway.json"
TOKEN = "gateway.token"
KEEPER = "gateway.keeper"
SOCKETS = "gateway.sockets"
"""The Unix socket on which the supervisor hands copies of its listening sockets to the controller."""


@dataclass(frozen=True)
class GatewayRecord:
    """The gateway as its supervisor describes it."""

    supervisor_pid: int
    """The supervisor (stopping it stops the worker too)."""
    supervisor_created: float | None
    port: int
    admin_port: int
    log: str
    started_at: float
    pid: int = 0
    """The worker: the process serving clients (0 while one is being started)."""
    created: float | None = None
    restarts: int = 0
    last_exit: str = ""
    heartbeat_at: float = 0.0
    down_since: float | None = None
    """Set while no worker serves (it died and the next one is starting)."""
    standby_pid: int = 0
    """The standby worker, imports done, that takes over when the worker dies (0: none ready)."""

    @property
    def url(self) -> str:
        """Where clients send requests."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """The control channel (routes), on its own port."""
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def running(self) -> bool:
        """The supervisor runs (this very process, not a later one with its PID)."""
        return procs.alive(self.supervisor_pid, self.supervisor_created)

    @property
    def serving(self) -> bool:
        """A worker runs under a running supervisor."""
        return self.running and self.pid > 0 and procs.alive(self.pid, self.created)

    def stop(self) -> list[int]:
        """Stop the supervisor and its worker; return survivors (normally none)."""
        return procs.stop(self.supervisor_pid, created_at=self.supervisor_created)

    def write(self, path: Path) -> None:
        """Store atomically, readable by this user only."""
        write_private(path, json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> GatewayRecord | None:
        """The record at `path`, or None."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


@dataclass(frozen=True)
class KeeperRecord:
    """The process keeping copies of the gateway's listening sockets (the controller), which
    starts a new supervisor on them when one dies: others wait for it rather than bind the port."""

    pid: int
    created: float | None
    port: int

    @property
    def running(self) -> bool:
        """The keeper still runs (this very process)."""
        return procs.alive(self.pid, self.created)

    def write(self, path: Path) -> None:
        """Store atomically (0600)."""
        write_private(path, json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> KeeperRecord | None:
        """The record at `path`, or None."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def token(directory: Path) -> str:
    """The admin channel's token, created (0600) on first use."""
    path = directory / TOKEN
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return value


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _adopt(fd: int) -> socket.socket:
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(True)
    return sock


def sockets_path(directory: Path) -> Path:
    """Where the hand-out socket of the gateway in `directory` lives: in it, or -- when that path
    is too long for a Unix socket (about 100 bytes) -- in a private directory of this user's under
    /tmp, named after it."""
    inside = directory / SOCKETS
    if len(str(inside)) < 100:
        return inside
    short = Path("/tmp") / f"launchbay-{os.getuid()}"
    short.mkdir(mode=0o700, exist_ok=True)
    st = short.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{short} is not a private directory of this user's")
    return short / (hashlib.sha256(str(directory).encode()).hexdigest()[:24] + ".sock")


def _handout(path: Path) -> socket.socket:
    """A Unix socket (owner only) on which the supervisor hands its listening sockets to the
    controller, who keeps copies: then no single process's death closes the gateway's port."""
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    path.chmod(0o600)
    server.listen(4)
    server.setblocking(False)
    return server


def fetch_sockets(directory: Path, timeout: float = 2.0) -> tuple[socket.socket, socket.socket] | None:
    """Copies of the running supervisor's (client, admin) listening sockets, or None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(sockets_path(directory)))
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 64, 2)
    except OSError:
        return None
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        return None
    return socket.socket(fileno=fds[0]), socket.socket(fileno=fds[1])


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)} ({signal.Signals(os.WTERMSIG(status)).name})"
    return f"exited with status {os.WEXITSTATUS(status)}"


class Supervisor:
    """Holds the sockets, runs one worker at a time, writes the record."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.dir: Path = args.dir
        self.args = args
        if args.client_fd is not None and args.admin_fd is not None:
            # Sockets kept open by the controller while the previous supervisor died: connections
            # that arrived meanwhile wait in their queue and are served by this one.
            self.client = _adopt(args.client_fd)
            self.admin = _adopt(args.admin_fd)
        else:
            self.client = _listen(args.port)
            self.admin = _listen(args.admin_port)
        self.handout = _handout(sockets_path(self.dir))
        token(self.dir)
        me = os.getpid()
        self.record = GatewayRecord(
            supervisor_pid=me,
            supervisor_created=procs.created(me),
            port=self.client.getsockname()[1],
            admin_port=self.admin.getsockname()[1],
            log=str(self.dir / "gateway.log"),
            started_at=time.time(),
        )
        self.worker: subprocess.Popen[bytes] | None = None
        self.standby: tuple[subprocess.Popen[bytes], int] | None = None
        self.served = False  # the first worker has answered once
        self._ready: int | None = None  # the standby's readiness pipe, until it said so
        self.stopping = False
        self.exits: list[float] = []

    def _argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "launchbay.rollout.local.worker",
            "--client-fd",
            str(self.client.fileno()),
            "--admin-fd",
            str(self.admin.fileno()),
            "--dir",
            str(self.dir),
            "--home",
            str(self.args.home),
            "--model",
            self.args.model,
            "--queue-size",
            str(self.args.queue_size),
            "--hedge-factor",
            str(self.args.hedge_factor),
            "--hedge-floor",
            str(self.args.hedge_floor),
            "--idle-timeout",
            str(self.args.idle_timeout),
            "--body-timeout",
            str(self.args.body_timeout),
            "--repeat-window",
            str(self.args.repeat_window),
            "--routing",
            self.args.routing,
            "--capture",
            self.args.capture,
        ]

    def spawn(self, reason: str) -> None:
        """Start a worker serving the two sockets (routes from the ledger; `reason` is recorded):
        the standby when one waits, imports done; a fresh process otherwise."""
        standby, self.standby = self.standby, None
        if standby is not None and standby[0].poll() is None:
            proc, pipe = standby
            with contextlib.suppress(OSError):
                os.write(pipe, (reason or "taking over").replace("\n", " ").encode() + b"\n")
            os.close(pipe)
            self.worker = proc
        else:
            if standby is not None:
                os.close(standby[1])
            argv = self._argv() + (["--restart-reason", reason] if reason else [])
            self.worker = subprocess.Popen(
                argv, pass_fds=(self.client.fileno(), self.admin.fileno()), preexec_fn=procs.die_with_parent
            )
        self.record = replace(
            self.record, pid=self.worker.pid, created=procs.created(self.worker.pid), standby_pid=0
        )
        self.record.write(self.dir / RECORD)
        if self._ready is not None:
            os.close(self._ready)
            self._ready = None

    def _spare(self) -> None:
        """Start the next standby worker (it imports, then waits on its pipe)."""
        read, write = os.pipe()
        ready_read, ready_write = os.pipe()
        proc = subprocess.Popen(
            [*self._argv(), "--standby-fd", str(read), "--ready-fd", str(ready_write)],
            pass_fds=(self.client.fileno(), self.admin.fileno(), read, ready_write),
            preexec_fn=procs.die_with_parent,
        )
        os.close(read)
        os.close(ready_write)
        os.set_blocking(ready_read, False)
        self.standby = (proc, write)
        self._ready = ready_read

    def _standby_ready(self) -> None:
        """Record the standby once it says it is ready (its imports done)."""
        if self._ready is None or self.standby is None:
            return
        try:
            said = os.read(self._ready, 64)
        except BlockingIOError:
            return
        os.close(self._ready)
        self._ready = None
        if said.startswith(b"ready"):
            self.record = replace(self.record, standby_pid=self.standby[0].pid)
            self.record.write(self.dir / RECORD)

    def run(self) -> None:
        """Serve until SIGTERM: restart the worker whenever it ends."""
        signal.signal(signal.SIGTERM, self._terminate)
        signal.signal(signal.SIGINT, self._terminate)
        self.spawn(self.args.restart_reason)
        beat = 0.0
        while not self.stopping:
            assert self.worker is not None
            pid, status = os.waitpid(self.worker.pid, os.WNOHANG)
            if pid and not self.stopping:
                self._restart(_describe(status))
            if self.record.down_since is not None and self._answers():
                self.record = replace(self.record, down_since=None)
                self.record.write(self.dir / RECORD)
            if not self.served and self._answers():
                self.served = True
            # A standby behind a serving worker (not while one starts: they would share the cores).
            spare_gone = self.standby is None or self.standby[0].poll() is not None
            if self.served and self.record.down_since is None and spare_gone:
                if self.standby is not None:
                    os.close(self.standby[1])
                self._spare()
            self._standby_ready()
            self._hand_out()
            now = time.time()
            if now - beat >= 1.0:
                beat = now
                self.record = replace(self.record, heartbeat_at=now)
                self.record.write(self.dir / RECORD)
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            Path(self.handout.getsockname()).unlink()
        if self.standby is not None:
            os.close(self.standby[1])  # end of file: the standby exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.standby[0].wait(timeout=5)
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.worker.kill()

    def _hand_out(self) -> None:
        """Give the listening sockets to whoever asks on the hand-out socket (only this user can
        reach it: it lives in a 0700 directory and is 0600 itself)."""
        try:
            conn, _ = self.handout.accept()
        except (BlockingIOError, InterruptedError):
            return
        with conn, contextlib.suppress(OSError):
            conn.setblocking(True)
            conn.settimeout(1.0)
            socket.send_fds(conn, [b"sockets"], [self.client.fileno(), self.admin.fileno()])

    def _restart(self, why: str) -> None:
        now = time.time()
        self.exits = [t for t in self.exits if now - t < 10] + [now]
        self.record = replace(
            self.record, restarts=self.record.restarts + 1, last_exit=why, down_since=now, pid=0
        )
        self.record.write(self.dir / RECORD)
        print(f"{time.strftime('%H:%M:%S')} gateway worker {why}; starting another", flush=True)
        if len(self.exits) >= 5:
            time.sleep(1.0)  # crashing at start: do not spin
        self.spawn(f"the previous gateway worker {why}")

    def _answers(self) -> bool:
        """The worker serves the admin channel (so it serves clients too)."""
        request = urllib.request.Request(
            self.record.admin_url + "/routes", headers={"Authorization": f"Bearer {token(self.dir)}"}
        )
        with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=0.5) as r:
            return bool(r.status == 200)
        return False

    def _terminate(self, _sig: int, _frame: object) -> None:
        self.stopping = True


def main() -> None:
    """Run the supervisor."""
    parser = argparse.ArgumentParser(description="launchbay gateway supervisor")
    parser.add_argument("--dir", type=Path, required=True, help="the model's local target directory")
    parser.add_argument("--home", type=Path, required=True, help="the state directory")
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, default=0)
    parser.add_argument("--client-fd", type=int, help="serve this inherited listening socket (clients)")
    parser.add_argument("--admin-fd", type=int, help="serve this inherited listening socket (admin)")
    parser.add_argument("--restart-reason", default="")
    parser.add_argument("--queue-size", type=int, default=1000, help="mirrored requests waiting at most")
    parser.add_argument("--hedge-factor", type=float, default=4.0, help="canary deadline: x stable's p99")
    parser.add_argument("--hedge-floor", type=float, default=0.5, help="canary deadline at least (s)")
    parser.add_argument("--idle-timeout", type=float, default=15.0, help="close idle connections after (s)")
    parser.add_argument("--body-timeout", type=float, default=10.0, help="a body must arrive within (s)")
    parser.add_argument("--repeat-window", type=float, default=10.0, help="shadow: a row counts once in (s)")
    parser.add_argument("--routing", default="", help="pin header and stickiness (JSON)")
    parser.add_argument("--capture", default="", help="the sample of requests kept for replay (JSON)")
    args = parser.parse_args()
    os.umask(0o077)
    Supervisor(args).run()


if __name__ == "__main__":
    main()
