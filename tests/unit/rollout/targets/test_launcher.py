"""Scale to zero in the gateway: idle servers stop, a request cold-starts them and waits."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from launchbay import procs
from launchbay.rollout.targets.launcher import SpawnSpec, server_env

TINY = Path(__file__).resolve().parents[3] / "tiny_model.py"


class Setup:
    def __init__(self, tmp: Path, start_delay: float, cold_start_timeout: float = 20.0) -> None:
        self.servers = tmp / "servers"
        self.servers.mkdir()
        self.port = procs.free_port()
        argv = [sys.executable, str(TINY), str(self.port), "7", str(start_delay)]
        log = self.servers / "v7.log"
        SpawnSpec(
            argv,
            server_env({"PATH": "/usr/bin:/bin"}),
            str(tmp),
            self.port,
            str(log),
            1.0,
            cold_start_timeout,
        ).write(self.servers, "7")
        self.gw_port = procs.free_port()
        self.gw = procs.start(
            [
                sys.executable,
                "-m",
                "launchbay.rollout.targets.gateway",
                "--port",
                str(self.gw_port),
                "--state",
                str(tmp / "routes.json"),
                "--servers",
                str(self.servers),
            ],
            {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[4])},
            tmp / "gateway.log",
        )
        self.url = f"http://127.0.0.1:{self.gw_port}"
        assert procs.wait_http(self.url + "/_launchbay/routes", 20, self.gw)
        httpx.put(
            self.url + "/_launchbay/routes",
            json={"stable": {"version": "7", "url": f"http://127.0.0.1:{self.port}"}},
        )

    def record(self) -> procs.ProcessRecord | None:
        return procs.ProcessRecord.read(self.servers / "v7.json")

    def metric(self, name: str) -> float:
        text = httpx.get(self.url + "/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def stop(self) -> None:
        rec = self.record()
        if rec is not None and procs.alive(rec.pid):
            procs.stop(rec.pid)
        procs.stop(self.gw)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path, start_delay=1.5)
    yield s
    s.stop()


def test_a_stopped_version_is_cold_started_by_a_request_then_stopped_again_when_idle(setup: Setup) -> None:
    t0 = time.monotonic()
    r = httpx.post(setup.url + "/predict", json={"row": {}}, timeout=30)
    waited = time.monotonic() - t0
    assert r.status_code == 200 and r.headers["X-Launchbay-Version"] == "7"
    assert waited >= 1.5  # the request was held while the server started
    assert setup.metric("launchbay_gateway_cold_starts_total") == 1
    assert setup.metric("launchbay_gateway_cold_start_seconds_count") == 1
    assert httpx.post(setup.url + "/predict", json={"row": {}}).status_code == 200  # warm now
    assert setup.metric("launchbay_gateway_cold_starts_total") == 1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rec = setup.record()
        if rec is not None and rec.scaled_to_zero and not procs.alive(rec.pid):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the idle server was not stopped")
    assert setup.metric("launchbay_gateway_scaled_to_zero_total") == 1
    assert httpx.post(setup.url + "/predict", json={"row": {}}, timeout=30).status_code == 200
    assert setup.metric("launchbay_gateway_cold_starts_total") == 2


def test_a_cold_start_that_takes_too_long_is_a_503_with_retry_after(tmp_path: Path) -> None:
    slow = Setup(tmp_path, start_delay=30, cold_start_timeout=1.0)
    try:
        r = httpx.post(slow.url + "/predict", json={"row": {}}, timeout=30)
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert "is starting" in r.json()["error"]
        assert slow.metric("launchbay_gateway_cold_start_failures_total") == 1
    finally:
        slow.stop()


def test_spawn_specs_keep_only_what_a_server_needs_and_are_private(tmp_path: Path) -> None:
    env = server_env(
        {"PATH": "/bin", "LAUNCHBAY_MODEL": "m:v1", "BENTOML_HOME": "/b", "AWS_SECRET_ACCESS_KEY": "x"}
    )
    assert env == {"PATH": "/bin", "LAUNCHBAY_MODEL": "m:v1", "BENTOML_HOME": "/b"}
    SpawnSpec(["x"], env, "/", 1, "l", 1, 1).write(tmp_path, "3")
    assert (SpawnSpec.path(tmp_path, "3").stat().st_mode & 0o777) == 0o600
