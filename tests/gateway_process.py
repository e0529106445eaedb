"""The local gateway as a real process (its supervisor and worker) for tests, and fake backends.

Backends are registered the way the local target records its servers (`servers/v<N>.json`): the
gateway refuses routes to anything else. Routes change over the admin channel with the token.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from launchbay import procs
from launchbay.rollout.local.supervisor import RECORD, GatewayRecord, token


class FakeModel:
    """A model server answering like launchbay's service, with controllable behaviour."""

    def __init__(self, version: str, prediction: int = 0, delay: float = 0.0, status: int = 200) -> None:
        self.version, self.prediction, self.delay, self.status = version, prediction, delay, status
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hits = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/predict", self._predict)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _predict(self, request: web.Request) -> web.Response:
        self.hits += 1
        body = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        rows = body.get("rows") or [body.get("row")]
        preds = [{"prediction": self.prediction, "score": 0.9 if self.prediction else 0.1} for _ in rows]
        return web.json_response(
            {"model": "m", "version": self.version, "predictions": preds}, status=self.status
        )

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


class GatewayProcess:
    """`python -m launchbay.rollout.local.supervisor` in `directory` (the model's local dir)."""

    def __init__(
        self,
        directory: Path,
        home: Path | None = None,
        model: str = "m",
        port: int = 0,
        queue_size: int = 1000,
        *extra: str,
    ) -> None:
        self.dir = directory
        self.servers = directory / "servers"
        self.servers.mkdir(parents=True, exist_ok=True)
        self.port = port or procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            sys.executable,
            "-m",
            "launchbay.rollout.local.supervisor",
            *("--dir", str(directory), "--home", str(home or directory / "home")),
            *("--model", model, "--port", str(self.port), "--queue-size", str(queue_size)),
            *extra,
        ]
        self.pid = procs.start(argv, dict(os.environ), directory / "gateway.log", owner=f"test#{directory}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rec = GatewayRecord.read(directory / RECORD)
            if (
                rec is not None
                and rec.supervisor_pid == self.pid
                and self._admin("GET", rec).status_code == 200
            ):
                self.record = rec
                return
            time.sleep(0.1)
        raise AssertionError(f"gateway did not start: {procs.tail(directory / 'gateway.log')}")

    def standby(self, timeout: float = 30) -> int:
        """Wait until the supervisor has a standby worker ready (a gateway that has been up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid := self.current.standby_pid:
                return pid
            time.sleep(0.05)
        raise AssertionError(f"no standby worker: {procs.tail(self.dir / 'gateway.log')}")

    @property
    def current(self) -> GatewayRecord:
        rec = GatewayRecord.read(self.dir / RECORD)
        assert rec is not None
        return rec

    def _admin(self, method: str, rec: GatewayRecord | None = None, **body: Any) -> httpx.Response:
        rec = rec or self.current
        headers = {"Authorization": f"Bearer {token(self.dir)}"}
        return httpx.request(method, rec.admin_url + "/routes", json=body or None, headers=headers, timeout=5)

    def register(self, model: FakeModel) -> dict[str, str]:
        """Record `model` as launchbay's server of its version; return it as a route backend."""
        return self.register_port(model.version, model.port)

    def register_port(self, version: str, port: int) -> dict[str, str]:
        """Record the server on `port` as launchbay's server of `version`; return the backend."""
        procs.ProcessRecord(pid=os.getpid(), port=port, log="", started_at=time.time()).write(
            self.servers / f"v{version}.json"
        )
        return {"version": version, "url": f"http://127.0.0.1:{port}"}

    def routes(self, **routes: Any) -> dict[str, Any]:
        res = self._admin("PUT", **routes)
        assert res.status_code == 200, res.text
        return dict(res.json())

    def split(self, stable: FakeModel, canary: FakeModel, **routes: Any) -> dict[str, Any]:
        """Register both servers and route between them (`canary_weight=` or `mirror=True`)."""
        return self.routes(stable=self.register(stable), canary=self.register(canary), **routes)

    def state(self) -> dict[str, Any]:
        res = self._admin("GET")
        assert res.status_code == 200, res.text
        return dict(res.json())

    def predict(self, client: httpx.Client | None = None, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("json", {"row": {"x": 1}})
        return (client or httpx).post(f"{self.url}/predict", timeout=10, **kwargs)  # type: ignore[union-attr]

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        procs.stop(self.pid)
