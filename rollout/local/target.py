"""The local target: one BentoML server process per version, behind launchbay's gateway.

Everything a rollout needs to find again lives under `<state>/local/<model>/`: the gateway's
record (`gateway.json`, written by its supervisor) and admin token, its routes file, and one record
per version's server. Any launchbay process -- `run`, `controller`, on-call's `rollback` -- works
on the same processes through these files; none of them has to be the one that started them.

The gateway is supervised (`supervisor.py`): a worker that dies is replaced within a second on
the same port with the ledger's routes. If the supervisor itself is gone, the next call here
starts a new one on the same port (or says which program holds it) and `notify` hears why, so
the restart lands in the ledger. Routes change only through the admin channel with the token.

Each server gets its own BENTOML_HOME (BentoML wipes `$BENTOML_HOME/prometheus_multiproc_dir` at
every start, so two servers sharing one would corrupt each other's metrics) with the shared Bento
and model stores linked in. Every process carries the state directory as its owner, so `down`
finds even one whose parent died.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from launchbay import procs
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem
from launchbay.home import Home
from launchbay.rollout.local import records
from launchbay.rollout.local.capture import CAPTURE_FILE, read
from launchbay.rollout.local.choice import Routing
from launchbay.rollout.local.launcher import SpawnSpec, spec_for
from launchbay.rollout.local.prometheus import LocalPrometheus
from launchbay.rollout.local.records import BASELINE, record_path, server_record
from launchbay.rollout.local.supervisor import KEEPER, RECORD, GatewayRecord, KeeperRecord, token
from launchbay.rollout.targets.base import VERSION, Backend, Notify, Processes, Routes, StaleRoutes
from launchbay.serving.request_sample import Capture, Captured


class LocalTarget:
    """Model servers and the gateway of one model on this machine."""

    def __init__(
        self, cfg: LaunchbayConfig, home: Home, model: str | None = None, notify: Notify | None = None
    ) -> None:
        self.cfg, self.home = cfg, home
        self.model = model or cfg.model.name
        self.dir = records.directory(home.root, self.model)
        self.gateway_file = self.dir / RECORD
        self.routes_file = self.dir / "routes.json"
        self.servers = self.dir / "servers"
        self.notify = notify or (lambda _action, _reason: None)
        self._gateway: GatewayRecord | None = None  # verified answering by this object

    @property
    def owner(self) -> str:
        """What every process of this model's local target carries in `$LAUNCHBAY_OWNER`."""
        return f"{self.home.root}#{self.model}"

    # -- gateway ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _starting(self) -> Iterator[None]:
        # One launchbay process at a time decides whether the gateway must be (re)started: two
        # on-call commands racing must not start two gateways.
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.dir / "gateway.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def gateway(self, timeout: float = 20.0) -> GatewayRecord:
        """The running gateway, started (routes from the ledger) when it is not running.

        Raises:
            EnvironmentProblem: the port is held by another program, or the gateway does not start.
        """
        kept = self._kept_by_keeper(timeout)
        if kept is not None:
            return kept
        with self._starting():
            rec = GatewayRecord.read(self.gateway_file)
            if rec is not None and rec.running and self._answers(rec, 3.0):
                return rec
            if rec is not None and rec.running:
                rec.stop()  # a supervisor whose worker never answers: replace both
                why = f"the gateway (supervisor pid {rec.supervisor_pid}) stopped answering"
            elif rec is not None:
                why = f"the gateway (supervisor pid {rec.supervisor_pid}) was not running"
            else:
                why = ""
            new = self._start(rec, why, timeout)
        if not self.cfg.rollout.prometheus_url:
            LocalPrometheus(self.home).announce(self.model, new.port)
        if why:
            self.notify("gateway-restarted", f"{why}: started again on port {new.port}")
        return new

    def _kept_by_keeper(self, timeout: float) -> GatewayRecord | None:
        """When the controller keeps the gateway's sockets, it alone starts a supervisor on them:
        wait for that (the port is not free for anyone else, and need not be)."""
        rec = GatewayRecord.read(self.gateway_file)
        keeper = KeeperRecord.read(self.dir / KEEPER)
        if (rec is not None and rec.running) or keeper is None or not keeper.running:
            return None
        if rec is not None and keeper.port != rec.port:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and keeper.running:
            now = GatewayRecord.read(self.gateway_file)
            if now is not None and now.running and self._answers(now, 0.5):
                return now
            time.sleep(0.05)
        return None

    def restart_on(self, sockets: tuple[socket.socket, socket.socket]) -> str:
        """Start a new supervisor on kept listening sockets if none runs (the keeper's move).
        Returns what was done ("" when a supervisor runs)."""
        with self._starting():
            rec = GatewayRecord.read(self.gateway_file)
            if rec is not None and rec.running:
                return ""
            pid = f"supervisor pid {rec.supervisor_pid}" if rec is not None else "its supervisor"
            why = f"the gateway ({pid}) was not running"
            new = self._start(rec, why, 20.0, sockets)
        said = f"{why}: started again on the same sockets (port {new.port}); no connection was refused"
        self.notify("gateway-restarted", said)
        return said

    def _start(
        self,
        old: GatewayRecord | None,
        why: str,
        timeout: float,
        sockets: tuple[socket.socket, socket.socket] | None = None,
    ) -> GatewayRecord:
        fds: tuple[int, ...] = ()
        if sockets is not None:
            fds = (sockets[0].fileno(), sockets[1].fileno())
            port = sockets[0].getsockname()[1]
        else:
            configured = self.cfg.rollout.gateway_port
            wanted = configured or (old.port if old is not None else None)
            if wanted and procs.wait_port_free(wanted, 3.0):
                port = wanted
            elif configured:
                raise EnvironmentProblem(f"rollout.gateway_port {configured} is {_holder(configured)}")
            else:
                port = procs.free_port()  # the port it had is someone else's now: clients must move
        inherited = ["--client-fd", str(fds[0]), "--admin-fd", str(fds[1])] if fds else []
        log = self.dir / "gateway.log"
        pid = procs.start(
            [
                sys.executable,
                "-m",
                "launchbay.rollout.local.supervisor",
                "--dir",
                str(self.dir),
                "--home",
                str(self.home.root),
                "--model",
                self.model,
                "--port",
                str(port),
                "--restart-reason",
                why,
                "--hedge-factor",
                str(self.cfg.rollout.hedge_factor),
                "--hedge-floor",
                str(self.cfg.rollout.hedge_floor),
                "--idle-timeout",
                str(self.cfg.rollout.gateway_idle_timeout),
                "--body-timeout",
                str(self.cfg.rollout.gateway_body_timeout),
                # Shadow compares a row once per analysis window: repeats in it are no new evidence.
                "--repeat-window",
                str(self.cfg.rollout.analysis_window),
                "--routing",
                Routing(**self.cfg.rollout.routing.model_dump()).to_json(),
                "--capture",
                self._capture().to_json(),
                *inherited,
            ],
            self._gateway_env(),
            log,
            owner=self.owner,
            pass_fds=fds,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rec = GatewayRecord.read(self.gateway_file)
            if rec is not None and rec.supervisor_pid == pid and self._answers(rec, 0.5):
                return rec
            if not procs.alive(pid):
                break
            time.sleep(0.05)
        procs.stop(pid)
        raise EnvironmentProblem(f"the gateway did not start; its log ends with:\n{procs.tail(log)}")

    def _capture(self) -> Capture:
        replay = self.cfg.rollout.preflight.replay
        if replay is None or self.cfg.rollout.target != "local":
            return Capture()
        return Capture(replay.capture, tuple(replay.drop), tuple(replay.hash))

    def captured(self, version: str | None = None) -> Captured | None:
        """The requests the gateway sampled for replay (None: none yet, or not configured); the
        gateway samples users' requests whatever version answered them (`version` is unused)."""
        del version
        return read(self.dir / CAPTURE_FILE)

    def _gateway_env(self) -> dict[str, str]:
        env = procs.scrubbed_env(dict(os.environ))
        if url := self.cfg.rollout.ledger_url or os.environ.get("LAUNCHBAY_LEDGER_URL"):
            env["LAUNCHBAY_LEDGER_URL"] = url  # the gateway takes its routes from the ledger
        return env

    def _answers(self, rec: GatewayRecord, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError, OSError):
                if self._request(rec, "GET", timeout=1.0).status_code == 200:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _request(
        self, rec: GatewayRecord, method: str, body: dict[str, Any] | None = None, timeout: float = 5.0
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token(self.dir)}"}
        return httpx.request(method, rec.admin_url + "/routes", json=body, headers=headers, timeout=timeout)

    @property
    def url(self) -> str:
        """The one address clients use, whatever version answers."""
        return self.gateway().url

    def processes(self) -> Processes | None:
        """This target's servers and gateway are processes on this machine: itself."""
        return self

    def _admin(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        # The gateway is probed (and started if needed) once per object, not before every call:
        # the controller calls this each tick and a rollback's speed is these calls. If it stopped
        # answering since, it is found again (its supervisor restarts a worker within a second;
        # a dead supervisor is replaced) and the call repeated.
        for attempt in (1, 2, 3):
            if self._gateway is None:
                self._gateway = self.gateway()
            try:
                r = self._request(self._gateway, method, body)
                break
            except httpx.HTTPError as exc:
                self._gateway = None
                if attempt == 3:
                    raise EnvironmentProblem(f"the gateway did not answer: {exc}") from None
                time.sleep(0.2 * attempt)
        if r.status_code == 409:
            raise StaleRoutes(r.json().get("error", r.text))
        if r.status_code != 200:
            raise EnvironmentProblem(f"the gateway refused the routes ({r.status_code}): {r.text}")
        data: dict[str, Any] = r.json()
        return data

    def set_routes(self, routes: Routes, generation: int | None = None) -> None:
        """Send traffic as `routes` says. Idempotent. The gateway keeps `generation` and refuses
        routes derived from an older one (StaleRoutes)."""
        body = routes.to_dict() | ({"generation": generation} if generation is not None else {})
        self._admin("PUT", body)

    def routes(self) -> Routes:
        """The routes in force, read back from the gateway."""
        return Routes.from_dict(self._admin("GET"))

    def inflight(self, version: str) -> int:
        """Requests the gateway is waiting on from `version`."""
        return int(self._admin("GET").get("inflight", {}).get(version, 0))

    # -- model servers ----------------------------------------------------------------------

    def _record_file(self, version: str) -> Path:
        return record_path(self.servers, version)

    def server(self, version: str) -> procs.ProcessRecord | None:
        """The record of a version's server, or None when none was started (or it was retired)."""
        return server_record(self.servers, version)

    def endpoints(self, version: str) -> list[str]:
        """The version's server, when it runs (one server per version here)."""
        rec = self.server(version)
        return [rec.url] if rec is not None and rec.running else []

    def backend(self, version: str) -> Backend:
        """Where the gateway reaches `version`."""
        rec = self.server(version)
        if rec is None:
            raise EnvironmentProblem(f"{self.model} version {version} is not deployed")
        return Backend(version=str(version), url=rec.url)

    def deploy(self, model: str, version: str) -> None:
        """Verify the version and start its server unless it runs. Returns without waiting.

        Raises:
            PipelineFailed: the registry's or the Bento's copy of the model does not verify.
        """
        rec = self.server(version)
        if rec is not None and rec.running:
            return
        argv, env, cwd, port, log = self._launch(model, version, rec, self._record_file(version), "v")
        if not self.cfg.rollout.prometheus_url:
            # The model server's own metrics (predictions per class, scores) for users' metrics.
            LocalPrometheus(self.home).announce(f"{model}-v{version}", port, kind="server")
        if self.cfg.serving.min_instances == 0:
            # The gateway stops it when idle and starts it again from this spec on demand.
            env = {**env, procs.OWNER_ENV: self.owner}
            spec_for(argv, env, cwd, port, log, self.cfg.serving).write(self.servers, version)
        else:
            SpawnSpec.path(self.servers, version).unlink(missing_ok=True)

    def _launch(
        self, model: str, version: str, rec: procs.ProcessRecord | None, record: Path, prefix: str
    ) -> tuple[list[str], dict[str, str], Path, int, Path]:
        """Start a server of `version` (verified first) recorded at `record`; what was run."""
        from launchbay.serving import package
        from launchbay.serving.deploy import prepare_serve

        # Started again where it was when that port is still free: the gateway's routes (and any
        # client of the server itself) stay right; the reconciler moves the routes otherwise.
        port = rec.port if rec is not None and procs.port_free(rec.port) else procs.free_port()
        command = prepare_serve(self.cfg, self.home, f"{model}@{version}", "127.0.0.1", port)
        argv, env = command.argv, command.env
        unit = version if prefix == "v" else f"{version}-{prefix.removesuffix('-v')}"
        env["BENTOML_HOME"] = str(self._server_home(unit, package.bentoml_home(self.home)))
        log = self.servers / f"{prefix}{version}.log"
        if log.exists():
            log.rename(log.with_suffix(f".{int(time.time())}.log"))
        # Started in the Bento's directory, never the checkout: the served model imports the
        # user's code from its Bento only, as it would in a cluster.
        procs.launch(argv, env, log, port, cwd=command.cwd, owner=self.owner).write(record)
        return argv, env, command.cwd, port, log

    # -- the baseline: a fresh server of stable, at the candidate's share --------------------

    def deploy_baseline(self, model: str, version: str) -> None:
        """Start a baseline server of `version` (stable's) unless one runs."""
        rec = procs.ProcessRecord.read(record_path(self.servers, version, BASELINE))
        if rec is not None and rec.running:
            return
        self._launch(model, version, rec, record_path(self.servers, version, BASELINE), BASELINE)

    def baseline_backend(self, version: str) -> Backend:
        """Where the gateway reaches the baseline server of `version`."""
        rec = procs.ProcessRecord.read(record_path(self.servers, version, BASELINE))
        if rec is None:
            raise EnvironmentProblem(f"{self.model} has no baseline server of version {version}")
        return Backend(version=str(version), url=rec.url)

    def baseline_health(self, version: str) -> Verdict:
        """As `health`, of the baseline server."""
        return _health(procs.ProcessRecord.read(record_path(self.servers, version, BASELINE)))

    def baselines(self) -> list[str]:
        """Versions with a baseline server record."""
        found = (p.stem.removeprefix(BASELINE) for p in self.servers.glob(f"{BASELINE}*.json"))
        return sorted(v for v in found if VERSION.match(v))

    def retire_baseline(self, version: str) -> None:
        """Stop the baseline server of `version` (the gateway no longer routes to it)."""
        path = record_path(self.servers, version, BASELINE)
        rec = procs.ProcessRecord.read(path)
        if rec is not None and rec.running and (survivors := rec.stop()):
            raise EnvironmentProblem(f"the baseline server of version {version} left processes: {survivors}")
        path.unlink(missing_ok=True)

    def _server_home(self, version: str, shared: Path) -> Path:
        own = self.servers / f"v{version}-bentoml"
        own.mkdir(parents=True, exist_ok=True)
        for store in ("bentos", "models"):
            link = own / store
            (shared / store).mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                if link.exists():
                    shutil.rmtree(link)
                link.symlink_to(shared / store, target_is_directory=True)
        return own

    def started(self, version: str) -> bool:
        """True once a server was started for `version` and not retired (alive or not)."""
        return self.server(version) is not None

    def health(self, version: str) -> Verdict:
        """PASS: ready; FAIL: not deployed or its process died; INCONCLUSIVE: still starting."""
        return _health(self.server(version))

    def log_tail(self, version: str, lines: int = 15) -> str:
        """The end of a version's server log (why it died)."""
        return procs.tail(self.servers / f"v{version}.log", lines)

    def retire(self, version: str, drain_timeout: float = 10.0) -> None:
        """Stop a version's server (its whole process tree) once the gateway has no request in
        flight to it. Idempotent. The caller has already routed traffic away; requests sent before
        that finish first."""
        rec = self.server(version)
        if rec is None:
            return
        if rec.running:
            deadline = time.monotonic() + drain_timeout
            while time.monotonic() < deadline:
                try:
                    if self.inflight(version) == 0:
                        break
                except EnvironmentProblem:
                    break
                time.sleep(0.05)
            if survivors := rec.stop():
                raise EnvironmentProblem(f"version {version}'s server left processes running: {survivors}")
        SpawnSpec.path(self.servers, version).unlink(missing_ok=True)  # never cold-started again
        self._record_file(version).unlink(missing_ok=True)
        LocalPrometheus(self.home).withdraw(f"{self.model}-v{version}")

    def deployed(self) -> list[str]:
        """Versions with a server record (running or not)."""
        return sorted(p.stem[1:] for p in self.servers.glob("v*.json") if VERSION.match(p.stem[1:]))

    def down(self) -> list[str]:
        """Stop every server and the gateway of this model, whole trees and strays; return what
        was stopped."""
        stopped = []
        for version in self.deployed():
            rec = self.server(version)
            if rec is not None and rec.running:
                rec.stop()
                stopped.append(f"version {version} (pid {rec.pid})")
            self._record_file(version).unlink(missing_ok=True)
        for version in self.baselines():
            self.retire_baseline(version)
            stopped.append(f"baseline of version {version}")
        keeper = KeeperRecord.read(self.dir / KEEPER)
        if keeper is not None and keeper.running and keeper.pid != os.getpid():
            # The controller keeps the gateway's sockets and would start it again: it goes first.
            procs.stop(keeper.pid, created_at=keeper.created)
            stopped.append(f"controller (pid {keeper.pid})")
        gw = GatewayRecord.read(self.gateway_file)
        if gw is not None and gw.running:
            gw.stop()
            stopped.append(f"gateway (pid {gw.supervisor_pid})")
        # Whatever still carries this model's owner mark (a worker orphaned by a crash) goes too.
        stopped += [f"stray process (pid {pid})" for pid in procs.sweep(self.owner)]
        return stopped


def _health(rec: procs.ProcessRecord | None) -> Verdict:
    if rec is not None and rec.scaled_to_zero and not rec.running:
        return Verdict.PASS  # stopped while idle; the gateway starts it on the next request
    if rec is None or not rec.running:
        return Verdict.FAIL
    try:
        ok = httpx.get(rec.url + "/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        ok = False
    return Verdict.PASS if ok else Verdict.INCONCLUSIVE


def _holder(port: int) -> str:
    proc = procs.listener(port)
    if proc is None:
        return "not free"
    with contextlib.suppress(Exception):
        return f"held by another program: {proc.name()} (pid {proc.pid})"
    return f"held by another program (pid {proc.pid})"
