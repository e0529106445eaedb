"""The controller as a process: always on for the local target, one per model and state directory.

    launchbay controller                 # in the foreground (Ctrl-C stops it)
    launchbay controller --background    # what commands start when they find none running

It ticks the controller (verify, start, analyse, decide: `engine.controller`) and runs a
reconciler pass (`engine.reconciler`) every `rollout.interval` -- at once when a command wakes it
(SIGUSR1) and when a previous stable's warm period ends -- keeps the gateway up (and keeps copies
of its listening sockets, so a supervisor that dies is replaced on the same sockets without
refusing a connection), and sends the notifications the ledger queues. A pass that fails never
stops it: a ledger that cannot be written is said in its record (`launchbay status` shows it)
and tried again every interval; nothing moves until it can be recorded.

Any launchbay command that records a decision for a local model starts it if it is not running
(`ensure`); `launchbay service install` makes the system start it at boot. Its record,
`<state>/controller/<model>/controller.json`, says who runs it, its heartbeat, the last world it
converged (or what still differs) and the latest analysis of each live release.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from launchbay import procs
from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem, LaunchbayError, Refused
from launchbay.faults import FAULTS_ENV
from launchbay.files import write_private
from launchbay.home import Home
from launchbay.rollout.engine.release import LedgerUnavailable, Release

if TYPE_CHECKING:  # the loop's parts are imported where it runs: `status` reads a record only
    from launchbay.rollout.engine.controller import Controller
    from launchbay.rollout.engine.operations import Rollout
    from launchbay.rollout.engine.reconciler import Converged

log = logging.getLogger("launchbay.controller")

RECORD = "controller.json"
LOCK = "controller.lock"
START_LOCK = "controller.start.lock"
STARTING = "controller.starting"
STOPPED = "stopped"
STALE_AFTER = 30.0
"""A record whose heartbeat is older than this many intervals belongs to a stuck controller."""


def directory(home: Home, model: str) -> Path:
    """Where the controller of `model` keeps its record, lock and log."""
    return home.root / "controller" / model


@dataclass(frozen=True)
class ControllerRecord:
    """The controller process as it describes itself."""

    pid: int
    created: float | None
    config: str
    started_at: float
    interval: float
    heartbeat_at: float = 0.0
    ledger_error: str | None = None
    """Why the ledger cannot be written (or read) now, while that lasts."""
    ledger_error_since: float | None = None
    world: dict[str, Any] | None = None
    """The last reconciler pass: desired world, routes, converged or what still differs."""
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Release id -> its latest analysis (every check against its limit)."""
    error: str | None = None
    """The last pass's failure other than the ledger's (the target, the registry), if any."""

    @property
    def running(self) -> bool:
        """This very process is alive."""
        return procs.alive(self.pid, self.created)

    @property
    def stuck(self) -> bool:
        """Alive, but its loop has not beaten for a long while (paused, hung)."""
        beat = self.heartbeat_at or self.started_at
        return self.running and time.time() - beat > max(STALE_AFTER * self.interval, 60.0)

    def write(self, path: Path) -> None:
        """Store atomically (0600)."""
        write_private(path, json.dumps(asdict(self), default=str))

    @classmethod
    def read(cls, path: Path) -> ControllerRecord | None:
        """The record at `path`, or None."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def status(home: Home, model: str) -> ControllerRecord | None:
    """The model's controller as it last recorded itself (None: never started here)."""
    return ControllerRecord.read(directory(home, model) / RECORD)


def ensure(cfg: LaunchbayConfig, home: Home, wait: float = 0.0) -> ControllerRecord | None:
    """Start the model's controller in the background unless it runs (local target only).

    Args:
        wait: seconds to wait for it to complete its first pass (0: return at once).

    Returns:
        Its record, or None for a cluster target (its controller runs in the cluster).

    Raises:
        EnvironmentProblem: `wait` was given and it did not come up (its log's end says why).
    """
    if cfg.rollout.target != "local" or cfg.source is None:
        return None
    model = cfg.model.name
    where = directory(home, model)
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    (where / STOPPED).unlink(missing_ok=True)  # whoever ensures it wants the world kept again
    with _flock(where / START_LOCK):  # two commands at once start one controller
        rec = status(home, model)
        if rec is not None and rec.stuck:
            # Alive but not beating for minutes (stopped, hung): it holds the lock and watches
            # nothing. Its record is ours; it is replaced.
            with contextlib.suppress(OSError):
                os.kill(rec.pid, signal.SIGKILL)
            procs.stop(rec.pid, timeout=5, created_at=rec.created)
        if rec is None or rec.stuck or not rec.running:
            starting = procs.ProcessRecord.read(where / STARTING)
            if starting is None or not starting.running or time.time() - starting.started_at > 120:
                _start(cfg, home, where)
    return status(home, model) if wait <= 0 else _await(home, model, wait)


def _await(home: Home, model: str, wait: float) -> ControllerRecord:
    """Wait until the model's controller has completed a round (any controller: one at a time)."""
    where = directory(home, model)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        now = status(home, model)
        if now is not None and now.running and now.heartbeat_at:
            return now
        starting = procs.ProcessRecord.read(where / STARTING)
        if (now is None or not now.running) and (starting is None or not starting.running):
            break  # it died before its first round
        time.sleep(0.1)
    raise EnvironmentProblem(
        f"the controller of {model} did not come up; its log ends with:\n"
        f"{procs.tail(where / 'controller.log')}"
    )


def _start(cfg: LaunchbayConfig, home: Home, where: Path) -> procs.ProcessRecord:
    """Start a controller in the background; it records itself once it holds the model's lock
    (until then, `controller.starting` says one is on its way)."""
    env = {k: v for k, v in os.environ.items() if k != FAULTS_ENV}  # faults are the caller's
    argv = [sys.executable, "-m", "launchbay", "controller", "--config", str(cfg.source), "--background"]
    # Started in the state directory, never the checkout: `python -m` puts its directory first on
    # sys.path, and nothing of the user's must shadow launchbay's own modules.
    owner = f"{home.root}#{cfg.model.name}"
    log_file = where / "controller.log"
    starting = procs.launch(argv, env, log_file, port=0, cwd=home.root, owner=owner)
    starting.write(where / STARTING)
    return starting


def stopped_on_purpose(home: Home, model: str) -> float | None:
    """When `launchbay down` stopped the model's processes (None: it did not, or a command that
    decides has started them again since). Nothing starts the controller by itself meanwhile."""
    try:
        return (directory(home, model) / STOPPED).stat().st_mtime
    except OSError:
        return None


def stop(home: Home, model: str, on_purpose: bool = False) -> int | None:
    """Stop the model's controller (its whole tree); return its PID, or None if none ran.

    With `on_purpose` (`launchbay down`), nothing but a command that decides starts it again."""
    if on_purpose:
        where = directory(home, model)
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        (where / STOPPED).touch()
    rec = status(home, model)
    if rec is None or not rec.running:
        return None
    procs.stop(rec.pid, created_at=rec.created)
    return rec.pid


def wake(home: Home, model: str) -> None:
    """Ask a running controller to tick now rather than at its next interval."""
    rec = status(home, model)
    if rec is not None and rec.running:
        with contextlib.suppress(OSError):
            os.kill(rec.pid, signal.SIGUSR1)


def follow(ctx: Rollout) -> Converged:
    """What a command does once it has recorded its intent: the controller started if it is not
    running (local target), the world made to match the ledger now -- in this process, with the
    same reconciler and lock the controller uses, so it works when nothing else runs -- and the
    controller woken to look at once. Returns the world as it now is."""
    from launchbay.rollout.engine.reconciler import Reconciler

    ensure(ctx.cfg, ctx.home)
    converged = Reconciler(ctx).converge()
    wake(ctx.home, ctx.model)
    return converged


Observe = Callable[[Release, Release | None], None]


def serve(
    controller: Controller,
    home: Home,
    *,
    once: bool = False,
    background: bool = False,
    standby: bool = False,
    observe: Observe = lambda _now, _before: None,
) -> None:
    """Run the controller's loop in this process until SIGTERM/SIGINT (or one round with `once`).

    Args:
        background: another controller runs already: return quietly.
        standby: another controller runs already: wait, and take over when it ends (systemd).

    Raises:
        Refused: another controller of the model runs (neither `background` nor `standby`).
    """
    ctx = controller.ctx
    cfg, model = ctx.cfg, ctx.model
    where = directory(home, model)
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = (where / LOCK).open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | (0 if standby else fcntl.LOCK_NB))
    except BlockingIOError:
        lock.close()
        if background:
            return
        rec = status(home, model)
        who = f" (pid {rec.pid})" if rec is not None and rec.running else ""
        raise Refused(
            f"a controller of {model} already runs{who}: `launchbay controller --stop` stops it"
        ) from None
    me = os.getpid()
    rec = ControllerRecord(me, procs.created(me), str(cfg.source), time.time(), cfg.rollout.interval)
    rec.write(where / RECORD)
    loop = _Loop(controller, where, rec, observe)
    with lock, loop.signals(), loop.notifier(), loop.keeper(), loop.monitor():
        loop.run(once)


class _Loop:
    """The controller's rounds, its record, and what runs beside it."""

    def __init__(self, controller: Controller, where: Path, rec: ControllerRecord, observe: Observe) -> None:
        self.c = controller
        self.where = where
        self.rec = rec
        self.observe = observe
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.seen: dict[int, Release] = {}
        from launchbay.rollout.local.target import LocalTarget

        processes = controller.ctx.target.processes()
        self.local = processes if isinstance(processes, LocalTarget) else None

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)}
        signal.signal(signal.SIGUSR1, lambda *_: self.wake.set())
        signal.signal(signal.SIGTERM, lambda *_: self._stop())
        signal.signal(signal.SIGINT, lambda *_: self._stop())
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    @contextlib.contextmanager
    def notifier(self) -> Iterator[None]:
        ctx = self.c.ctx
        ledger = ctx.ledger
        sender = None
        with contextlib.suppress(LaunchbayError):
            from launchbay.rollout.ledger import notify
            from launchbay.rollout.ledger.store import SqlLedger

            if isinstance(ledger, SqlLedger):
                sender = notify.notifier(ledger, ctx.cfg)
        if sender is not None:
            sender.start()  # its own thread: a slow receiver never delays a round
        try:
            yield
        finally:
            if sender is not None:
                sender.stop(flush=ctx.cfg.notifications.timeout)

    @contextlib.contextmanager
    def keeper(self) -> Iterator[None]:
        """On the local target, a thread holding copies of the gateway's sockets: a supervisor
        that dies is replaced on them within a tenth of a second."""
        if self.local is None:
            yield
            return
        from launchbay.rollout.local.keeper import SocketKeeper

        keeper = SocketKeeper(self.local)

        def keep() -> None:
            while not self.stopping.is_set():
                try:
                    if said := keeper.check():
                        log.warning("%s", said)
                except Exception:  # never let the keeper die: it is what keeps clients served
                    log.exception("keeping the gateway's sockets")
                self.stopping.wait(0.1)

        thread = threading.Thread(target=keep, name="gateway-keeper", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self.stopping.set()
            thread.join(timeout=5)
            keeper.close()

    @contextlib.contextmanager
    def monitor(self) -> Iterator[None]:
        """With `monitor:` on the local target, the production monitor's passes, in their own
        thread (a slow pull never delays a rollback), every `monitor.every`."""
        ctx = self.c.ctx
        if ctx.cfg.monitor is None or self.local is None:
            yield
            return
        from launchbay.rollout.monitor.watch import Monitor

        watcher = Monitor(ctx, self.local.dir / "monitor", self.local.dir)
        every = ctx.cfg.monitor.every
        done = threading.Event()

        def watch() -> None:
            while not done.wait(every):
                try:
                    watcher.tick()
                except Exception:  # a bug in one pass must not stop the next
                    log.exception("monitor pass failed")

        thread = threading.Thread(target=watch, name="launchbay-monitor", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=10)

    def _keep_prometheus(self) -> None:
        """The local Prometheus is the controller's to keep up too: one that died is started again
        (on its port when free; the analysis follows it if it had to move)."""
        from launchbay.rollout.local.prometheus import LocalPrometheus
        from launchbay.rollout.metrics.prometheus import PrometheusProvider

        ctx = self.c.ctx
        prometheus = LocalPrometheus(ctx.home)
        if ctx.cfg.rollout.prometheus_url or prometheus.record is not None:
            return  # it runs: one that answers badly (hung) is the analysis's to judge, not ours
        url = prometheus.ensure()
        if isinstance(self.c.metrics, PrometheusProvider) and self.c.metrics.url != url:
            self.c.metrics = PrometheusProvider(url)

    def run(self, once: bool) -> None:
        interval = self.c.ctx.cfg.rollout.interval
        while not self.stopping.is_set():
            started = time.monotonic()
            self.round()
            if once:
                return
            wait = interval - (time.monotonic() - started)
            world = self.c.last_world
            if world is not None and world.desired.wake_at is not None:
                wait = min(wait, world.desired.wake_at - time.time() + 0.05)
            self.wake.wait(max(0.0, wait))
            self.wake.clear()

    def round(self) -> None:
        """One round: gateway up, every release decided, the world converged; the record written."""
        error = None
        ledger_error = None
        try:
            if self.local is not None:
                _ = self.local.url  # a gateway whose supervisor died with no sockets kept: start it
                self._keep_prometheus()
            ticked = self.c.tick_all()
            for r in ticked:
                self.observe(r, self.seen.get(r.id))
                self.seen[r.id] = r
        except LedgerUnavailable as exc:
            ledger_error = exc.message
        except LaunchbayError as exc:
            error = exc.message
        except Exception as exc:  # a bug in one round must not stop the next
            log.exception("controller round failed")
            error = f"{type(exc).__name__}: {exc}"
        if ledger_error is not None and self.rec.ledger_error is None:
            log.error("%s; nothing moves until it can be recorded, trying again", ledger_error)
        if error is not None:
            log.error("%s", error)
        since = self.rec.ledger_error_since if self.rec.ledger_error else time.time()
        world = self.c.last_world
        self.rec = replace(
            self.rec,
            heartbeat_at=time.time(),
            ledger_error=ledger_error,
            ledger_error_since=since if ledger_error else None,
            world=world.to_dict() if world is not None else None,
            results={
                str(rid): r.evidence()
                for rid, r in self.c.last_result.items()
                if rid in self.seen and self.seen[rid].phase.live
            },
            error=error,
        )
        with contextlib.suppress(OSError):
            self.rec.write(self.where / RECORD)


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[IO[str]]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def unit_name(model: str) -> str:
    """The systemd unit of `model`'s controller."""
    return f"launchbay-controller-{model}.service"


def service_env(cfg: LaunchbayConfig, home: Home) -> dict[str, str]:
    """What the controller needs of this environment when the system starts it: the state
    directory, the ledger and registry addresses, the webhooks' and Prometheus' credentials."""
    names = {"LAUNCHBAY_LEDGER_URL", "MLFLOW_TRACKING_URI", "LAUNCHBAY_USER", "AWS_REGION"}
    names |= {n for n in os.environ if n.startswith(("LAUNCHBAY_PROMETHEUS_", "KUBECONFIG"))}
    names |= {w.url_env for w in cfg.notifications.webhooks if w.url_env}
    env = {name: os.environ[name] for name in sorted(names) if name in os.environ}
    return {"LAUNCHBAY_HOME": str(home.root), **env}


def unit_text(cfg: LaunchbayConfig, env_file: Path, home: Home, python: str = sys.executable) -> str:
    """A systemd service that runs the model's controller from boot, restarting it if it dies.

    The environment comes from `env_file` (0600: it may hold a ledger password or a webhook URL),
    never from the unit, which others may read. KillMode=process: restarting or stopping the unit
    stops the controller only -- the gateway and the model servers keep serving and a new
    controller adopts them; `launchbay down` stops them all.
    """
    assert cfg.source is not None
    lines = [
        "[Unit]",
        f"Description=launchbay controller of {cfg.model.name} ({cfg.source.parent})",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"WorkingDirectory={home.root}",
        f"EnvironmentFile={env_file}",
        # Quoted: a project or an interpreter in a path with spaces is one argument each.
        f'ExecStart="{python}" -m launchbay controller --config "{cfg.source}" --standby',
        "Restart=always",
        "RestartSec=2",
        "KillMode=process",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)
