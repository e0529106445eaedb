"""The local target with real processes: its gateway, version servers (tiny stand-ins) and records.

What on-call relies on: any launchbay process finds the same gateway and servers again through
the records under the state directory, routes survive the gateway dying, a retired version's
server is gone, and `down` leaves nothing running.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rollout_fakes import config

from launchbay import procs
from launchbay.checks.verdict import Verdict
from launchbay.errors import EnvironmentProblem
from launchbay.home import Home
from launchbay.rollout.targets.base import Routes
from launchbay.rollout.targets.local import LocalTarget

TINY = Path(__file__).resolve().parents[3] / "tiny_model.py"


class Local:
    """A LocalTarget whose versions are tiny model processes recorded the way `deploy` records them."""

    def __init__(self, tmp: Path) -> None:
        # No Prometheus: the gateway is not announced to one (rollout.prometheus_url is external).
        self.cfg = config(prometheus_url="http://prometheus.test:9090")
        self.home = Home(tmp / "home").ensure()
        self.target = LocalTarget(self.cfg, self.home)

    def serve(self, version: str) -> procs.ProcessRecord:
        port = procs.free_port()
        log = self.target.servers / f"v{version}.log"
        pid = procs.start([sys.executable, str(TINY), str(port), version], dict(os.environ), log)
        rec = procs.ProcessRecord(pid=pid, port=port, log=str(log), started_at=time.time())
        rec.write(self.target.servers / f"v{version}.json")
        assert procs.wait_http(rec.url + "/readyz", 20, pid)
        return rec

    def answer(self) -> str:
        r = httpx.post(self.target.url + "/predict", json={"row": {}}, timeout=10)
        assert r.status_code == 200, r.text
        return r.headers["X-Launchbay-Version"]


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    lt = Local(tmp_path)
    try:
        yield lt
    finally:
        lt.target.down()


def test_routes_are_read_back_from_the_gateway_and_survive_its_death(local: Local) -> None:
    local.serve("1")
    local.serve("2")
    t = local.target
    routes = Routes(stable=t.backend("1"), canary=t.backend("2"), canary_weight=100)
    t.set_routes(routes)
    assert t.routes() == routes
    assert local.answer() == "2"
    gateway = procs.ProcessRecord.read(t.gateway_file)
    assert gateway is not None
    os.kill(gateway.pid, signal.SIGKILL)
    # Another launchbay process (on-call's) finds the gateway gone, restarts it on the same port
    # with the routes it had: clients keep their address and their split.
    again = LocalTarget(local.cfg, local.home)
    assert again.routes() == routes
    restarted = procs.ProcessRecord.read(t.gateway_file)
    assert restarted is not None and restarted.pid != gateway.pid and restarted.port == gateway.port
    assert local.answer() == "2"


def test_health_follows_the_process_and_retire_removes_the_version(local: Local) -> None:
    rec = local.serve("3")
    t = local.target
    assert t.started("3") and t.health("3") is Verdict.PASS
    assert t.processes() is t and "3" in t.deployed()
    t.set_routes(Routes(stable=t.backend("3")))
    os.kill(rec.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while t.health("3") is not Verdict.FAIL and time.monotonic() < deadline:
        time.sleep(0.05)
    assert t.health("3") is Verdict.FAIL and t.started("3")  # died, but was started: never restarted
    t.retire("3", drain_timeout=1)
    assert not t.started("3") and t.health("3") is Verdict.FAIL
    with pytest.raises(EnvironmentProblem, match="version 3 is not deployed"):
        t.backend("3")


def test_down_stops_every_process_it_recorded(local: Local) -> None:
    servers = [local.serve("1"), local.serve("2")]
    t = local.target
    t.set_routes(Routes(stable=t.backend("1")))
    gateway = procs.ProcessRecord.read(t.gateway_file)
    assert gateway is not None
    stopped = t.down()
    assert len(stopped) == 3 and any("gateway" in s for s in stopped)
    for pid in [gateway.pid, *(s.pid for s in servers)]:
        assert not procs.alive(pid), pid
    assert t.deployed() == [] and t.down() == []


def test_a_server_log_tail_says_why_it_died(local: Local) -> None:
    rec = local.serve("4")
    Path(rec.log).write_text("loading model\nImportError: libcuda.so.1: cannot open shared object file\n")
    assert "libcuda.so.1" in local.target.log_tail("4")
