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
from launchbay.rollout.local.supervisor import GatewayRecord
from launchbay.rollout.local.target import LocalTarget
from launchbay.rollout.targets.base import Routes

TINY = Path(__file__).resolve().parents[3] / "tiny_model.py"


class Local:
    """A LocalTarget whose versions are tiny model processes recorded the way `deploy` records them."""

    def __init__(self, tmp: Path) -> None:
        # No Prometheus: the gateway is not announced to one (rollout.prometheus_url is external).
        self.cfg = config(prometheus_url="http://prometheus.test:9090")
        self.home = Home(tmp / "home").ensure()
        self.heard: list[tuple[str, str]] = []
        self.target = LocalTarget(self.cfg, self.home, notify=lambda *event: self.heard.append(event))

    def serve(self, version: str) -> procs.ProcessRecord:
        port = procs.free_port()
        log = self.target.servers / f"v{version}.log"
        argv = [sys.executable, str(TINY), str(port), version]
        rec = procs.launch(argv, dict(os.environ), log, port, owner=self.target.owner)
        rec.write(self.target.servers / f"v{version}.json")
        assert procs.wait_http(rec.url + "/readyz", 20, rec.pid)
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


def test_routes_are_read_back_and_a_killed_gateway_comes_back_on_its_port(local: Local) -> None:
    local.serve("1")
    local.serve("2")
    t = local.target
    routes = Routes(stable=t.backend("1"), canary=t.backend("2"), canary_weight=100)
    t.set_routes(routes)
    assert t.routes() == routes
    assert local.answer() == "2"
    gateway = GatewayRecord.read(t.gateway_file)
    assert gateway is not None and gateway.serving
    os.kill(gateway.supervisor_pid, signal.SIGKILL)  # its worker dies with it
    deadline = time.monotonic() + 5
    while procs.alive(gateway.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not procs.alive(gateway.pid)
    # Another launchbay process (on-call's) finds the gateway gone and starts it again on the same
    # port with the routes it had: clients keep their address and their split.
    again = LocalTarget(local.cfg, local.home, notify=lambda *event: local.heard.append(event))
    assert again.routes() == routes
    restarted = GatewayRecord.read(t.gateway_file)
    assert restarted is not None and restarted.supervisor_pid != gateway.supervisor_pid
    assert restarted.port == gateway.port
    assert local.answer() == "2"
    ((action, reason),) = local.heard
    assert action == "gateway-restarted" and f"pid {gateway.supervisor_pid}) was not running" in reason


def test_a_port_held_by_another_program_is_named(local: Local) -> None:
    import socket

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        cfg = config(prometheus_url="http://prometheus.test:9090", gateway_port=port)
        with pytest.raises(
            EnvironmentProblem,
            match=rf"rollout.gateway_port {port} is held by another program: \S+ \(pid {os.getpid()}\)",
        ):
            LocalTarget(cfg, local.home).gateway()


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
    gateway = GatewayRecord.read(t.gateway_file)
    assert gateway is not None
    stopped = t.down()
    assert len(stopped) == 3 and any("gateway" in s for s in stopped)
    for pid in [gateway.supervisor_pid, gateway.pid, *(s.pid for s in servers)]:
        assert not procs.alive(pid), pid
    assert t.deployed() == [] and t.down() == []


def test_down_also_stops_a_stray_whose_parent_and_record_are_gone(local: Local) -> None:
    rec = local.serve("5")
    local.target.server("5")
    (local.target.servers / "v5.json").unlink()  # the record is lost (a crash mid-write, a wipe)
    stopped = local.target.down()
    assert stopped == [f"stray process (pid {rec.pid})"] and not rec.running


def test_a_server_log_tail_says_why_it_died(local: Local) -> None:
    rec = local.serve("4")
    Path(rec.log).write_text("loading model\nImportError: libcuda.so.1: cannot open shared object file\n")
    assert "libcuda.so.1" in local.target.log_tail("4")


def test_status_says_the_gateway_is_down_and_since_when(local: Local) -> None:
    from launchbay.rollout import status

    local.serve("1")
    local.target.set_routes(Routes(stable=local.target.backend("1")))
    up = status.gateway(local.cfg, local.home)
    assert up is not None and up["up"] and up["down_since"] is None
    gateway = GatewayRecord.read(local.target.gateway_file)
    assert gateway is not None
    time.sleep(1.2)  # a heartbeat or two
    killed = time.time()
    os.kill(gateway.supervisor_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while procs.alive(gateway.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    down = status.gateway(local.cfg, local.home)
    assert down is not None and not down["up"]
    assert killed - 1.5 <= down["down_since"] <= killed  # its last heartbeat before it died
