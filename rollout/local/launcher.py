"""Scale to zero on the local target: the gateway stops idle servers and cold-starts them on demand.

A version deployed with `serving.min_instances: 0` has a spawn spec beside its server record
(`spawn-v<N>.json`: argv, environment, port, idle timeout). Inside the gateway process:

* a reaper stops the version's server once nothing asked for it for `idle_timeout` and nothing is
  in flight (its record stays, with the PID of a process that no longer runs);
* a request for a version whose server is not running starts it from the spec and waits for it
  to be ready -- at most `cold_start_timeout`, then the client gets 503 with Retry-After;
* concurrent requests during one cold start share it; cold starts are counted and timed.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from launchbay import procs
from launchbay.files import write_private
from launchbay.rollout.local.records import record_path, server_record
from launchbay.rollout.targets.base import check_version


@dataclass(frozen=True)
class SpawnSpec:
    """How to start a version's server again (written by the local target at deploy)."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    port: int
    log: str
    idle_timeout: float
    cold_start_timeout: float

    @staticmethod
    def path(servers: Path, version: str) -> Path:
        """Where the spec of `version` lives."""
        return record_path(servers, version, prefix="spawn-v")

    def write(self, servers: Path, version: str) -> None:
        """Store it readable by this user only (the environment is the server's)."""
        write_private(self.path(servers, version), json.dumps(asdict(self)))

    @classmethod
    def read(cls, servers: Path, version: str) -> SpawnSpec | None:
        """The spec of `version`, or None (the version is not scaled to zero)."""
        try:
            return cls(**json.loads(cls.path(servers, version).read_text()))
        except (OSError, ValueError, TypeError):
            return None


class Launcher:
    """Cold starts and idle stops of the versions that have a spawn spec."""

    def __init__(self, servers: Path, metrics: Any, inflight: dict[str, int]) -> None:
        self.servers = servers
        self.metrics = metrics
        self.inflight = inflight
        self.last_request: dict[str, float] = {}
        self.ready_since: dict[str, float] = {}
        self.up: set[str] = set()  # versions known to be running (checked by the reaper each second)
        self._specs: dict[str, tuple[float, SpawnSpec | None]] = {}
        self._starting: dict[str, asyncio.Task[bool]] = {}
        self._stopping: dict[str, asyncio.Future[None]] = {}

    def spec(self, version: str) -> SpawnSpec | None:
        """The version's spawn spec, re-read at most once a second (requests must not hit the disk)."""
        now = time.monotonic()
        cached = self._specs.get(version)
        if cached is None or now - cached[0] > 1.0:
            cached = (now, SpawnSpec.read(self.servers, version))
            self._specs[version] = cached
        return cached[1]

    def _record(self, version: str) -> procs.ProcessRecord | None:
        return server_record(self.servers, version)

    def touch(self, version: str) -> None:
        """Note a request for `version` (idle time counts from the last one)."""
        self.last_request[version] = time.monotonic()

    async def ensure_up(self, version: str) -> bool:
        """True when the version can take a request now (starting it first if it was stopped)."""
        self.touch(version)
        if version in self.up:
            return True
        stopping = self._stopping.get(version)
        if stopping is not None:
            await asyncio.shield(stopping)  # stopped while idle just now: started again below
        spec = self.spec(version)
        if spec is None:
            return True  # not scaled to zero: nothing to do, the normal path
        rec = self._record(version)
        if rec is not None and rec.running and version not in self._starting:
            self.up.add(version)
            return True
        task = self._starting.get(version)
        if task is None:
            task = asyncio.create_task(self._cold_start(version, spec))
            self._starting[version] = task
            task.add_done_callback(lambda _t: self._starting.pop(version, None))
        return await asyncio.shield(task)

    async def _cold_start(self, version: str, spec: SpawnSpec) -> bool:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        rec = await loop.run_in_executor(
            None, lambda: procs.launch(spec.argv, spec.env, Path(spec.log), spec.port, cwd=Path(spec.cwd))
        )
        rec.write(record_path(self.servers, version))
        pid = rec.pid
        url = f"http://127.0.0.1:{spec.port}/readyz"
        deadline = time.monotonic() + spec.cold_start_timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if not procs.alive(pid):
                    break
                try:
                    async with session.get(url) as r:
                        if r.status == 200:
                            self.metrics.cold_starts.labels(version).inc()
                            self.metrics.cold_start_seconds.labels(version).observe(
                                time.perf_counter() - started
                            )
                            self.touch(version)
                            self.up.add(version)
                            self.ready_since[version] = time.monotonic()
                            return True
                except (aiohttp.ClientError, TimeoutError):
                    pass
                # The lean runtime answers in well under a second: a coarse poll would be a
                # visible share of the cold start a client waits for.
                await asyncio.sleep(0.02)
        self.metrics.cold_start_failures.labels(version).inc()
        return False

    async def _ready(self, port: int) -> bool:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session,
                session.get(f"http://127.0.0.1:{port}/readyz") as r,
            ):
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def reap(self) -> None:
        """Stop servers idle for longer than their spec's idle_timeout (runs forever)."""
        while True:
            await asyncio.sleep(1.0)
            for spec_file in self.servers.glob("spawn-v*.json"):
                version = spec_file.stem.removeprefix("spawn-v")
                try:
                    check_version(version)
                except ValueError:
                    continue  # not a spec launchbay wrote
                spec = SpawnSpec.read(self.servers, version)
                rec = self._record(version)
                if rec is None or not rec.running:
                    self.up.discard(version)
                if spec is None or rec is None or not rec.running or version in self._starting:
                    continue
                if version not in self.ready_since:
                    if not await self._ready(rec.port):
                        continue  # still starting: idle time counts from its first ready answer
                    self.ready_since[version] = time.monotonic()
                since = max(self.last_request.get(version, 0.0), self.ready_since[version])
                idle = time.monotonic() - since
                if idle >= spec.idle_timeout and self.inflight.get(version, 0) == 0:
                    self.ready_since.pop(version, None)
                    self.up.discard(version)
                    # On record *before* it stops: the local target then reports the version
                    # healthy (stopped while idle), never dead, at every instant -- a reconciler
                    # looking in between would otherwise start it again elsewhere.
                    replace(rec, scaled_to_zero=True).write(record_path(self.servers, version))
                    self.metrics.scaled_to_zero.labels(version).inc()  # counted as it is recorded
                    loop = asyncio.get_running_loop()
                    self._stopping[version] = stopped = loop.create_future()
                    try:
                        await loop.run_in_executor(None, rec.stop)
                    finally:
                        del self._stopping[version]
                        stopped.set_result(None)


def spec_for(
    argv: list[str], env: dict[str, str], cwd: Path, port: int, log: Path, serving: Any
) -> SpawnSpec:
    """The spawn spec of a server started with `argv`/`env` (only for `min_instances: 0`)."""
    return SpawnSpec(
        argv=list(argv),
        env=env,  # already a server's environment (serving.deploy.server_env)
        cwd=str(cwd),
        port=port,
        log=str(log),
        idle_timeout=float(serving.idle_timeout),
        cold_start_timeout=float(serving.cold_start_timeout),
    )
