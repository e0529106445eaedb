"""Warm steps: a Hera runner step started by forking a process that has already imported the
heavy libraries, instead of a new interpreter importing them again for every step.

`python -m hera.workflows.runner -e mod:fn FILE` spends most of a short step importing Great
Expectations, MLflow, scikit-learn and Hera. Here a multiprocessing *forkserver* -- a fresh
interpreter, single-threaded, that imports those libraries once (`warm_preload`) -- forks one
child per step. The child is still a process of its own, as a pod is: it gets its own session,
the step's environment, working directory, `sys.path` and `sys.argv` as `python -m` would set
them, its stdout/stderr files, and runs the runner module as `__main__`; it exits through the
interpreter's own shutdown (threads joined, atexit handlers run). A step that crashes, leaks,
changes its directory or environment, or is SIGKILLed for its deadline touches nothing but
itself; the forkserver never runs a step and the executor only waits for the child.

Fork is only safe from a process with one thread: the first start probes the forkserver, and if
its imports left a thread running, steps start cold (a new interpreter each) and say why.
`LAUNCHBAY_WARM_STEPS=0` starts them cold too.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import multiprocessing
import multiprocessing.forkserver
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

from launchbay import procs

SWITCH = "LAUNCHBAY_WARM_STEPS"
RUNNER = ["-m", "hera.workflows.runner"]
PRELOAD = "launchbay.pipelines.warm_preload"


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
"""What multiprocessing reports for a child whose forkserver died (and what a step exiting 255 says)."""


class WarmProcess:
    """A step's process forked from the forkserver: wait for it, or kill it.

    The forkserver, not the executor, is the child's parent and reports its exit status. If it
    dies (killed from outside, the OOM killer) while the step runs, the step goes on as an orphan:
    it is then followed by its pid and start time until it ends, and its exit code read from
    `Launch.status`."""

    def __init__(self, process: Any, launch: Launch) -> None:
        self._process = process
        self._launch = launch
        self.pid: int = process.pid
        self._started = procs.created(self.pid)  # with the pid, its identity
        self._orphaned = False

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code (negative: killed by that signal), or None if still running at `timeout`."""
        end = None if timeout is None else time.monotonic() + timeout
        if not self._orphaned:
            self._process.join(timeout)
            code = self._process.exitcode
            if code is None:
                return None
            if code != LOST or not self._running():
                return self._recorded(int(code))
            self._orphaned = True  # its forkserver died: the step itself is still running
        while self._running():
            if end is not None and time.monotonic() >= end:
                return None
            time.sleep(0.1)
        return self._recorded(LOST)

    def _recorded(self, reported: int) -> int:
        """The code the child wrote as it ended; else what was reported (a signal, or LOST)."""
        with contextlib.suppress(OSError, ValueError):
            return int(Path(self._launch.status).read_text())
        if reported == LOST:
            with contextlib.suppress(OSError), Path(self._launch.stderr).open("a") as err:
                err.write(
                    "\nlaunchbay: the warm-step forkserver died while this step ran, and the step "
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
        """SIGKILL, as the cold path's `Popen.kill` (never a later process that reused the pid)."""
        if self._orphaned and not self._running():
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


class Starter:
    """Starts eligible steps warm; says why not when it cannot (then steps start cold)."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._broken: str | None = unsafe_here(python)
        self._context: ForkServerContext | None = None
        self._base_path: list[str] = []
        self._lock = threading.Lock()

    @property
    def disabled(self) -> str | None:
        """Why steps start cold now (None: they start warm)."""
        return f"{SWITCH}=0" if os.environ.get(SWITCH, "1") == "0" else self._broken

    def eligible(self, argv: list[str]) -> bool:
        """True for `python -m hera.workflows.runner ...` when warm starts are possible."""
        return self.disabled is None and len(argv) > 3 and argv[0] == self.python and argv[1:3] == RUNNER

    def prestart(self) -> None:
        """Start the forkserver (its imports take seconds) in the background, so that the first
        step finds it ready; what runs meanwhile (config, MLflow checks) is not held up."""
        if self.disabled is None:
            threading.Thread(target=self._ready, name="launchbay-warm-prestart", daemon=True).start()

    def stop(self) -> None:
        """Stop the forkserver once the steps are done: its preloaded libraries hold hundreds of MB
        that a rollout following in the same process has no use for. A later start makes a new one."""
        with self._lock:
            if self._context is not None:
                self._context = None
                _stop_server()

    def _ready(self) -> ForkServerContext | None:
        with self._lock:
            if self._context is None and self.disabled is None:
                try:
                    self._context = self._prepare()
                except Exception as exc:  # no forkserver here (platform, resources): start cold
                    self._broken = f"no forkserver: {type(exc).__name__}: {exc}"
                    _stop_server()  # one that started but failed its probe is of no use
            return self._context

    def _prepare(self) -> ForkServerContext:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([PRELOAD])
        # The sys.path a fresh `python -m` would have, minus its first entry (the working
        # directory) and $PYTHONPATH: the step's own are put in front of it in the child.
        clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = subprocess.run(
            [self.python, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"],
            capture_output=True, text=True, env=clean, timeout=60, check=True,
        )  # fmt: skip
        self._base_path = json.loads(out.stdout)
        probe = context.Process(target=_probe, args=(PRELOAD,), name="launchbay-warm-probe")
        probe.start()
        probe.join(120)
        if probe.exitcode == 3:
            raise RuntimeError(
                "the forkserver is not single-threaded after its imports: forking from it is unsafe"
            )
        if probe.exitcode != 0:
            raise RuntimeError(f"a process forked from it could not start (probe exit {probe.exitcode})")
        return context

    def start(self, launch: Launch) -> WarmProcess | None:
        """The step's process, forked warm; None when it must start cold (`disabled` says why)."""
        context = self._ready()
        if context is None:
            return None
        name = f"launchbay-step:{launch.module}"
        process = context.Process(target=_child, args=(launch, self._base_path), name=name, daemon=False)
        try:
            process.start()
        except Exception as exc:  # the forkserver died and could not be restarted: this one cold
            self._broken = f"forkserver failed: {type(exc).__name__}: {exc}"
            return None
        return WarmProcess(process, launch)


def _stop_server() -> None:
    """Stop this process's forkserver, if one runs, by CPython's own (private) way: close its alive
    pipe and wait for its exit."""
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    with contextlib.suppress(Exception):  # none started, or another Python: it ends with us
        server._stop()  # type: ignore[union-attr]


def _probe(preload: str) -> None:
    """Exit 0 when the process forking us had a single thread once its preload was imported (so
    forking it was safe), 3 when not."""
    import importlib

    threads = getattr(importlib.import_module(preload), "THREADS_AFTER_IMPORT", None)
    os._exit(0 if threads == 1 else 3)


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


_STARTERS: dict[str, Starter] = {}


def starter(python: str = sys.executable) -> Starter:
    """This process's starter for `python` (one forkserver serves every executor of the process)."""
    if python not in _STARTERS:
        _STARTERS[python] = Starter(python)
    return _STARTERS[python]
