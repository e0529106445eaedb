"""The gateway as a real process in front of real HTTP backends: split, mirror, compare, survive."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from launchbay.procs import free_port


class FakeModel:
    """A model server answering like launchbay's service, with controllable behaviour."""

    def __init__(self, version: str, prediction: int = 0, delay: float = 0.0, status: int = 200) -> None:
        self.version, self.prediction, self.delay, self.status = version, prediction, delay, status
        self.port = free_port()
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
    def __init__(self, state: Path, queue_size: int = 1000) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = state
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "launchbay.rollout.targets.gateway",
                "--port",
                str(self.port),
                "--state",
                str(state),
                "--queue-size",
                str(queue_size),
            ],
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/_launchbay/routes", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("gateway did not start")

    def routes(self, **routes: Any) -> dict[str, Any]:
        res = httpx.put(f"{self.url}/_launchbay/routes", json=routes, timeout=5)
        assert res.status_code == 200, res.text
        return dict(res.json())

    def predict(self, client: httpx.Client | None = None) -> httpx.Response:
        return (client or httpx).post(f"{self.url}/predict", json={"row": {"x": 1}}, timeout=10)  # type: ignore[union-attr]

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp_path / "routes.json")
    yield gw
    gw.stop()


@pytest.fixture
def models() -> Iterator[dict[str, FakeModel]]:
    made: dict[str, FakeModel] = {}
    yield made
    for m in made.values():
        m.stop()


def backend(m: FakeModel) -> dict[str, str]:
    return {"version": m.version, "url": m.url}


def test_without_a_deployed_version_clients_get_503(gateway: GatewayProcess) -> None:
    assert gateway.predict().status_code == 503


def test_weighted_split_and_every_response_names_its_version(gateway: GatewayProcess, models: dict) -> None:
    models["1"], models["2"] = FakeModel("1"), FakeModel("2", prediction=1)
    gateway.routes(stable=backend(models["1"]), canary=backend(models["2"]), canary_weight=25)
    with httpx.Client() as client:
        answers = [gateway.predict(client) for _ in range(400)]
    versions = [r.headers["X-Launchbay-Version"] for r in answers]
    assert all(r.status_code == 200 for r in answers)
    assert all(json.loads(r.content)["version"] == v for r, v in zip(answers, versions, strict=True))
    share = versions.count("2") / len(versions)
    assert 0.15 < share < 0.35, share
    assert gateway.metric("launchbay_gateway_requests_total", version="2", role="primary") == versions.count(
        "2"
    )


def test_shadow_answers_come_from_stable_and_are_compared_with_the_candidate(
    gateway: GatewayProcess, models: dict
) -> None:
    models["1"], models["2"] = FakeModel("1", prediction=0), FakeModel("2", prediction=1)
    gateway.routes(stable=backend(models["1"]), canary=backend(models["2"]), mirror=True)
    with httpx.Client() as client:
        answers = [gateway.predict(client) for _ in range(60)]
    assert {r.headers["X-Launchbay-Version"] for r in answers} == {"1"}
    deadline = time.monotonic() + 10
    while gateway.metric("launchbay_shadow_compared_rows_total") < 60 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert models["2"].hits == 60
    assert gateway.metric("launchbay_shadow_compared_rows_total", stable="1", candidate="2") == 60
    assert gateway.metric("launchbay_shadow_disagreement_rows_total", stable="1", candidate="2") == 60
    assert gateway.metric("launchbay_shadow_score_diff_count") == 60


def test_a_slow_shadow_never_slows_users_and_overflow_is_dropped_and_counted(
    tmp_path: Path, models: dict
) -> None:
    gw = GatewayProcess(tmp_path / "r.json", queue_size=5)
    try:
        models["1"], models["2"] = FakeModel("1"), FakeModel("2", delay=2.0)
        gw.routes(stable=backend(models["1"]), canary=backend(models["2"]), mirror=True)
        start = time.perf_counter()
        with httpx.Client() as client:
            answers = [gw.predict(client) for _ in range(50)]
        elapsed = time.perf_counter() - start
        assert all(r.status_code == 200 for r in answers)
        assert elapsed < 2.0, elapsed  # not waiting for the 2 s shadow
        assert gw.metric("launchbay_shadow_dropped_total") >= 50 - 5 - 4  # queue 5, 4 workers busy
    finally:
        gw.stop()


def test_changing_routes_loses_no_in_flight_request(gateway: GatewayProcess, models: dict) -> None:
    models["1"], models["2"] = FakeModel("1", delay=1.0), FakeModel("2")
    gateway.routes(stable=backend(models["1"]))
    results: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: results.append(gateway.predict()))
    slow.start()
    time.sleep(0.3)
    assert httpx.get(f"{gateway.url}/_launchbay/routes").json()["inflight"]["1"] == 1
    gateway.routes(stable=backend(models["2"]))  # promote while version 1 is answering
    after = gateway.predict()
    slow.join()
    assert results[0].status_code == 200 and results[0].headers["X-Launchbay-Version"] == "1"
    assert after.headers["X-Launchbay-Version"] == "2"


def test_a_dead_backend_is_a_502_counted_as_its_versions_error(gateway: GatewayProcess, models: dict) -> None:
    models["1"] = FakeModel("1")
    gateway.routes(stable={"version": "9", "url": f"http://127.0.0.1:{free_port()}"})
    res = gateway.predict()
    assert res.status_code == 502 and res.headers["X-Launchbay-Version"] == "9"
    assert gateway.metric("launchbay_gateway_requests_total", version="9", code="5xx") == 1


def test_routes_survive_a_gateway_restart_and_bad_routes_are_refused(tmp_path: Path, models: dict) -> None:
    models["1"], models["2"] = FakeModel("1"), FakeModel("2")
    gw = GatewayProcess(tmp_path / "routes.json")
    gw.routes(stable=backend(models["1"]), canary=backend(models["2"]), canary_weight=50)
    bad = httpx.put(f"{gw.url}/_launchbay/routes", json={"stable": backend(models["1"]), "canary_weight": 30})
    assert bad.status_code == 400 and "needs a canary" in bad.text
    os.killpg(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait()
    again = GatewayProcess(tmp_path / "routes.json")
    try:
        routes = httpx.get(f"{again.url}/_launchbay/routes").json()
        assert routes["canary_weight"] == 50 and routes["canary"]["version"] == "2"
    finally:
        again.stop()


def test_a_failing_canary_is_retried_on_stable_and_still_counted_against_the_canary(
    gateway: GatewayProcess, models: dict
) -> None:
    models["1"], models["2"] = FakeModel("1"), FakeModel("2", status=500)
    gateway.routes(stable=backend(models["1"]), canary=backend(models["2"]), canary_weight=50)
    with httpx.Client() as client:
        answers = [gateway.predict(client) for _ in range(100)]
    assert all(r.status_code == 200 for r in answers)  # users never see the canary's failures
    assert {r.headers["X-Launchbay-Version"] for r in answers} == {"1"}
    retried = [r for r in answers if r.headers.get("X-Launchbay-Retried-From") == "2"]
    assert models["2"].hits == len(retried) > 20
    # ... but the analysis sees them: every one is a 5xx of version 2.
    assert gateway.metric("launchbay_gateway_requests_total", version="2", code="5xx") == len(retried)
    assert gateway.metric("launchbay_gateway_canary_retries_total", version="2") == len(retried)
