"""The local target: one BentoML server process per version, behind launchbay's gateway.

Everything a rollout needs to find again lives under `<state>/local/<model>/`: the gateway's
record and routes (the gateway persists its routes, so a restarted gateway keeps them), and one
record per version's server. Any launchbay process -- `run`, `controller`, on-call's `rollback` --
works on the same processes through these files; none of them has to be the one that started them.

Each server gets its own BENTOML_HOME (BentoML wipes `$BENTOML_HOME/prometheus_multiproc_dir` at
every start, so two servers sharing one would corrupt each other's metrics) with the shared Bento
and model stores linked in.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from launchbay import procs
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem
from launchbay.home import Home
from launchbay.rollout.targets.base import Backend, Processes, Routes
from launchbay.rollout.targets.gateway import ADMIN
from launchbay.rollout.targets.launcher import SpawnSpec, spec_for
from launchbay.rollout.targets.local_prometheus import LocalPrometheus


class LocalTarget:
    """Model servers and the gateway of one model on this machine."""

    def __init__(self, cfg: LaunchbayConfig, home: Home, model: str | None = None) -> None:
        self.cfg, self.home = cfg, home
        self.model = model or cfg.model.name
        self.dir = home.root / "local" / self.model
        self.gateway_file = self.dir / "gateway.json"
        self.routes_file = self.dir / "routes.json"
        self.servers = self.dir / "servers"
        self._gateway: procs.ProcessRecord | None = None  # verified running by this object

    # -- gateway ----------------------------------------------------------------------------

    def gateway(self, timeout: float = 20.0) -> procs.ProcessRecord:
        """The running gateway, started (with the routes it had) when it is not running."""
        rec = procs.ProcessRecord.read(self.gateway_file)
        if rec is not None and procs.alive(rec.pid) and procs.wait_http(rec.url + ADMIN, 2.0, rec.pid):
            return rec
        if rec is not None and procs.alive(rec.pid):
            procs.stop(rec.pid)  # alive but not answering: replace it
        wanted = self.cfg.rollout.gateway_port or (rec.port if rec is not None else None)
        port = wanted if wanted and procs.wait_port_free(wanted, 3.0) else procs.free_port()
        if self.cfg.rollout.gateway_port and port != self.cfg.rollout.gateway_port:
            raise EnvironmentProblem(
                f"rollout.gateway_port {self.cfg.rollout.gateway_port} is in use by another program"
            )
        log = self.dir / "gateway.log"
        pid = procs.start(
            [
                sys.executable,
                "-m",
                "launchbay.rollout.targets.gateway",
                "--port",
                str(port),
                "--state",
                str(self.routes_file),
                "--servers",
                str(self.servers),
            ],
            dict(os.environ),
            log,
        )
        new = procs.ProcessRecord(pid=pid, port=port, log=str(log), started_at=time.time())
        new.write(self.gateway_file)
        if not procs.wait_http(new.url + ADMIN, timeout, pid):
            procs.stop(pid)
            raise EnvironmentProblem(f"the gateway did not start; its log ends with:\n{procs.tail(log)}")
        if not self.cfg.rollout.prometheus_url:
            LocalPrometheus(self.home).announce(self.model, port)
        return new

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
        # answering since, it is found again (restarted with its routes) and the call repeated.
        for attempt in (1, 2):
            if self._gateway is None:
                self._gateway = self.gateway()
            url = self._gateway.url + ADMIN
            try:
                r = httpx.request(method, url, json=body, timeout=5.0)
                break
            except httpx.HTTPError as exc:
                self._gateway = None
                if attempt == 2:
                    raise EnvironmentProblem(f"the gateway at {url} did not answer: {exc}") from None
        if r.status_code != 200:
            raise EnvironmentProblem(f"the gateway refused the routes ({r.status_code}): {r.text}")
        data: dict[str, Any] = r.json()
        return data

    def set_routes(self, routes: Routes) -> None:
        """Send traffic as `routes` says. Idempotent."""
        self._admin("PUT", routes.to_dict())

    def routes(self) -> Routes:
        """The routes in force, read back from the gateway."""
        return Routes.from_dict(self._admin("GET"))

    def inflight(self, version: str) -> int:
        """Requests the gateway is waiting on from `version`."""
        return int(self._admin("GET").get("inflight", {}).get(version, 0))

    # -- model servers ----------------------------------------------------------------------

    def _record_file(self, version: str) -> Path:
        return self.servers / f"v{version}.json"

    def server(self, version: str) -> procs.ProcessRecord | None:
        """The record of a version's server, or None when none was started (or it was retired)."""
        return procs.ProcessRecord.read(self._record_file(version))

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
        from launchbay.serving import package
        from launchbay.serving.deploy import prepare_serve

        rec = self.server(version)
        if rec is not None and procs.alive(rec.pid):
            return
        port = procs.free_port()
        argv, env = prepare_serve(self.cfg, self.home, f"{model}@{version}", "127.0.0.1", port)
        env["BENTOML_HOME"] = str(self._server_home(version, package.bentoml_home(self.home)))
        log = self.servers / f"v{version}.log"
        if log.exists():
            log.rename(log.with_suffix(f".{int(time.time())}.log"))
        pid = procs.start(argv, env, log, cwd=self.cfg.base_dir)
        procs.ProcessRecord(pid=pid, port=port, log=str(log), started_at=time.time()).write(
            self._record_file(version)
        )
        if self.cfg.serving.min_instances == 0:
            # The gateway stops it when idle and starts it again from this spec on demand.
            spec_for(argv, env, self.cfg.base_dir, port, log, self.cfg.serving).write(self.servers, version)
        else:
            SpawnSpec.path(self.servers, version).unlink(missing_ok=True)

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
        rec = self.server(version)
        if rec is not None and rec.scaled_to_zero and not procs.alive(rec.pid):
            return Verdict.PASS  # stopped while idle; the gateway starts it on the next request
        if rec is None or not procs.alive(rec.pid):
            return Verdict.FAIL
        try:
            ok = httpx.get(rec.url + "/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            ok = False
        return Verdict.PASS if ok else Verdict.INCONCLUSIVE

    def log_tail(self, version: str, lines: int = 15) -> str:
        """The end of a version's server log (why it died)."""
        return procs.tail(self.servers / f"v{version}.log", lines)

    def retire(self, version: str, drain_timeout: float = 10.0) -> None:
        """Stop a version's server once the gateway has no request in flight to it. Idempotent.

        The caller has already routed traffic away; requests sent before that finish first.
        """
        rec = self.server(version)
        if rec is None:
            return
        if procs.alive(rec.pid):
            deadline = time.monotonic() + drain_timeout
            while time.monotonic() < deadline:
                try:
                    if self.inflight(version) == 0:
                        break
                except EnvironmentProblem:
                    break
                time.sleep(0.05)
            procs.stop(rec.pid)
        SpawnSpec.path(self.servers, version).unlink(missing_ok=True)  # never cold-started again
        self._record_file(version).unlink(missing_ok=True)

    def deployed(self) -> list[str]:
        """Versions with a server record (running or not)."""
        return sorted(p.stem[1:] for p in self.servers.glob("v*.json"))

    def down(self) -> list[str]:
        """Stop every server and the gateway of this model; return what was stopped."""
        stopped = []
        for version in self.deployed():
            rec = self.server(version)
            if rec is not None and procs.alive(rec.pid):
                procs.stop(rec.pid)
                stopped.append(f"version {version} (pid {rec.pid})")
            self._record_file(version).unlink(missing_ok=True)
        rec = procs.ProcessRecord.read(self.gateway_file)
        if rec is not None and procs.alive(rec.pid):
            procs.stop(rec.pid)
            stopped.append(f"gateway (pid {rec.pid})")
        return stopped
