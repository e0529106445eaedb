"""Scale to zero with the lean runtime: stopped when idle, cold-started by the next request."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from harness import Launchbay, Result
from projects import RISKY_ROW, write_project

from launchbay import procs
from launchbay.checks.signature import generate_keypair
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.local.supervisor import GatewayRecord

pytestmark = pytest.mark.slow


def test_an_idle_version_scales_to_zero_and_the_next_request_gets_a_correct_answer(tmp_path: Path) -> None:
    home = tmp_path / "home"
    generate_keypair(home / "keys")
    write_project(
        tmp_path,
        rows=3000,
        overrides={"serving.min_instances": 0, "serving.idle_timeout": "2s", "serving.measure": True},
    )
    bay = Launchbay(tmp_path, home)

    def lb(*args: str) -> Result:
        return bay.run(*args, timeout=600)

    try:
        first = lb("run")  # version 1 is measured, deployed and serves all traffic
        assert first.returncode == 0, first.stdout + first.stderr
        assert re.search(r"measure\s+│ passed", first.stdout), first.stdout
        # Scale to zero serves through the lean runtime (serving.runtime: auto), measured as such.
        measured = json.loads((home / "measurements" / "fraud-detector-v1-lean.json").read_text())
        assert measured["runtime"] == "lean"
        assert measured["cold_start_s"] > 0 and measured["max_rps_within_slo"] > 0
        assert [lv["concurrency"] for lv in measured["levels"]] == [1, 4, 8]
        created = SqlLedger(f"sqlite:///{home / 'ledger.db'}").history(model="fraud-detector")[0]
        assert created.evidence["measurements"]["cold_start_s"] == measured["cold_start_s"]
        servers = home / "local" / "fraud-detector" / "servers"
        gateway = GatewayRecord.read(home / "local" / "fraud-detector" / "gateway.json")
        assert gateway is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rec = procs.ProcessRecord.read(servers / "v1.json")
            if rec is not None and rec.scaled_to_zero and not rec.running:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("version 1 was not stopped after 2 s idle")
        asked = time.perf_counter()
        r = httpx.post(gateway.url + "/predict", json={"row": RISKY_ROW}, timeout=120)
        answered = time.perf_counter() - asked
        assert r.status_code == 200, r.text
        assert r.headers["X-Launchbay-Version"] == "1"
        assert r.json()["predictions"][0]["prediction"] == 1  # the risky example row is fraud
        metrics = httpx.get(gateway.url + "/metrics").text
        assert 'launchbay_gateway_cold_starts_total{version="1"} 1.0' in metrics
        assert 'launchbay_gateway_cold_start_seconds_count{version="1"} 1.0' in metrics
        (cold,) = re.findall(r'launchbay_gateway_cold_start_seconds_sum\{version="1"\} (\S+)', metrics)
        # The figure, for the log (speed is judged in benchmarks/cold_start.py, not here).
        print(f"scale-to-zero cold start: {float(cold):.3f} s in the gateway, {answered:.3f} s at the client")
        log = (servers / "v1.log").read_text()
        assert "(onnx)" in log, log  # the lean runtime served the signed ONNX variant
        status = lb("status")
        assert status.returncode == 0 and "promoted" in status.stdout
    finally:
        lb("down")
