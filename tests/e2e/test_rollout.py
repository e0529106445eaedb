"""Progressive delivery against real processes: BentoML servers, the gateway, Prometheus, the CLI.

One module fixture trains the stable version (served by `launchbay run`, the first version of the
model) and registers candidates with production-only faults (faults.py). Each test then rolls a
candidate out while a client sends steady traffic through the gateway and records which version
answered. Tests leave version 1 serving all traffic with no live release, as they found it; every
process is stopped by its PID at the end (`launchbay down`, then the PID files).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from projects import write_project

from checks.signature import generate_keypair
from pipelines.example.fraud import FEATURES
from rollout import procs
from rollout.ledger import Event, Ledger, Release
from rollout.phases import Phase
from rollout.traffic import Traffic, sample_rows

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
MODEL = "fraud-detector"
ROLLOUT = {
    "shadow": {"duration": "4s", "max_disagreement": 0.05, "max_score_shift": 0.1},
    "steps": [25, 50],
    "interval": "1s",
    "analysis_window": "4s",
    "min_samples": 15,
    "max_consecutive_errors": 3,
    "grace_period": "10m",
    "start_timeout": "90s",
    # Generous absolute limits: each fault must be caught by the check named in its test.
    "slo": {
        "p95_latency_ms": 500,
        "max_error_rate": 0.01,
        "max_p95_ratio_vs_stable": 2.0,
        "max_error_ratio_vs_stable": 2,
    },
    # dana, the author of every release here, is an approver too: four eyes must still stop her.
    "approval": {"required": True, "approvers": ["alice", "bob", "dana"]},
}


@dataclass
class Bay:
    root: Path
    home: Path
    env: dict[str, str]
    versions: dict[str, str]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "launchbay", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "launchbay", *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    @property
    def ledger(self) -> Ledger:
        return Ledger(f"sqlite:///{self.home / 'ledger.db'}")

    @property
    def gateway(self) -> str:
        rec = procs.ProcessRecord.read(self.home / "local" / MODEL / "gateway.json")
        assert rec is not None
        return rec.url

    def routes(self) -> dict[str, object]:
        doc: dict[str, object] = httpx.get(self.gateway + "/_launchbay/routes", timeout=5).json()
        return doc

    def traffic(self, rate: float = 40) -> Traffic:
        rows = sample_rows(str(self.root / "data" / "transactions.parquet"), FEATURES, n=300)
        return Traffic(self.gateway, rows, rate=rate)

    def latest(self) -> Release:
        return self.ledger.releases(MODEL)[0]

    def events(self, release: Release) -> list[Event]:
        return self.ledger.history(release_id=release.id)

    def wait_for(self, what: Callable[[Release], bool], timeout: float) -> Release:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.latest()
            if what(r):
                return r
            time.sleep(0.2)
        raise AssertionError(f"timed out; latest release: {self.latest()}")


KINDS = ["good", "errors", "slow", "crash", "disagree"]


def _stop_everything(home: Path) -> None:
    """Stop every process the tests' launchbay started, by the PIDs it recorded."""
    for record in [
        *home.glob("local/*/*.json"),
        *home.glob("local/*/servers/*.json"),
        *home.glob("prometheus/*.json"),
    ]:
        rec = procs.ProcessRecord.read(record)
        if rec is not None and procs.alive(rec.pid):
            procs.stop(rec.pid)


@pytest.fixture(scope="module")
def bay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bay]:
    root = tmp_path_factory.mktemp("rollout")
    home = root / "home"
    generate_keypair(home / "keys")
    config = write_project(root, rows=5000, overrides={"rollout": ROLLOUT})
    shutil.copy(HERE / "rollout_project" / "faults.py", root / "faults.py")
    env = {**os.environ, "LAUNCHBAY_HOME": str(home), "COLUMNS": "200", "LAUNCHBAY_USER": "dana"}
    env.pop("MLFLOW_TRACKING_URI", None)
    b = Bay(root, home, env, {})
    try:
        # The first version: trained, gated, signed, packaged, and served as stable by `run`.
        first = b.run("run")
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"{MODEL}@v1#1: promoted" in first.stdout
        made = subprocess.run(
            [sys.executable, str(HERE / "candidates.py"), str(config), "data/transactions.parquet", *KINDS],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        b.versions = json.loads(made.stdout.strip().splitlines()[-1])
        yield b
    finally:
        b.run("down", timeout=120)
        _stop_everything(home)


@pytest.fixture(autouse=True)
def stable_serves_alone(bay: Bay) -> Iterator[None]:
    assert not [r for r in bay.ledger.releases(MODEL) if r.phase.live or r.phase is Phase.PENDING]
    assert bay.routes()["stable"]["version"] == "1"  # type: ignore[index]
    yield


def _release(bay: Bay, kind: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object], Release]:
    with bay.traffic() as client:
        res = bay.run("release", f"{MODEL}@{bay.versions[kind]}")
        time.sleep(0.5)
    return res, client.summary(), bay.latest()


def _entered(bay: Bay, release: Release) -> list[str]:
    return [e.phase_to or "" for e in bay.events(release) if e.phase_from != e.phase_to]


def test_a_candidate_failing_20_percent_is_rolled_back_in_shadow_before_any_user_sees_it(bay: Bay) -> None:
    res, seen, release = _release(bay, "errors")
    assert res.returncode == 1, res.stdout + res.stderr
    assert release.phase is Phase.ROLLED_BACK
    assert "candidate error rate (mirrored)" in res.stderr
    assert Phase.CANARY.value not in _entered(bay, release)
    assert seen["failed"] == 0 and bay.versions["errors"] not in seen["by_version"]  # type: ignore[operator]
    last = bay.events(release)[-1]
    assert last.actor == "launchbay-controller" and last.action == "rollback"
    assert last.evidence["analysis"]["verdict"] == "FAIL"
    assert bay.routes()["canary"] is None


def test_a_candidate_disagreeing_with_stable_is_stopped_in_shadow(bay: Bay) -> None:
    res, seen, release = _release(bay, "disagree")
    assert release.phase is Phase.ROLLED_BACK, res.stdout + res.stderr
    assert "prediction disagreement with stable" in res.stderr
    assert Phase.CANARY.value not in _entered(bay, release)
    assert seen["failed"] == 0 and bay.versions["disagree"] not in seen["by_version"]  # type: ignore[operator]


def test_a_candidate_that_crashes_at_start_never_gets_traffic_and_is_marked_failed(bay: Bay) -> None:
    res, seen, release = _release(bay, "crash")
    assert res.returncode == 1
    assert release.phase is Phase.FAILED
    assert "libcuda.so.1" in bay.events(release)[-1].reason  # the server's own last words
    assert _entered(bay, release) == ["pending", "verified", "failed"]
    assert seen["failed"] == 0 and bay.versions["crash"] not in seen["by_version"]  # type: ignore[operator]
    assert not (bay.home / "local" / MODEL / "servers" / f"v{bay.versions['crash']}.json").exists()


def test_a_candidate_5x_slower_is_rolled_back_on_the_p95_ratio(bay: Bay) -> None:
    res, seen, release = _release(bay, "slow")
    assert release.phase is Phase.ROLLED_BACK, res.stdout + res.stderr
    assert "p95 latency vs stable" in bay.events(release)[-1].reason
    assert Phase.CANARY.value in _entered(bay, release)  # shadow does not judge latency; canary does
    assert seen["failed"] == 0
    assert bay.routes()["canary"] is None


def test_prometheus_down_mid_rollout_never_promotes_and_rolls_back_after_the_error_limit(bay: Bay) -> None:
    with bay.traffic() as client:
        proc = bay.spawn("release", f"{MODEL}@{bay.versions['good']}")
        try:
            bay.wait_for(lambda r: r.phase is Phase.CANARY, timeout=120)
            rec = procs.ProcessRecord.read(bay.home / "prometheus" / "prometheus.json")
            assert rec is not None
            os.kill(rec.pid, signal.SIGKILL)
            output, _ = proc.communicate(timeout=120)
        finally:
            procs.stop(proc.pid)
    release = bay.latest()
    assert proc.returncode == 1, output
    assert release.phase is Phase.ROLLED_BACK
    assert "3 analyses in a row could not measure" in bay.events(release)[-1].reason
    assert Phase.PROMOTED.value not in _entered(bay, release)
    assert client.summary()["failed"] == 0


def test_controller_killed_mid_canary_resumes_then_approval_promotes_and_on_call_rolls_back(bay: Bay) -> None:
    good = bay.versions["good"]
    stable_pid = procs.ProcessRecord.read(bay.home / "local" / MODEL / "servers" / "v1.json").pid  # type: ignore[union-attr]
    with bay.traffic() as client:
        created = bay.run("release", f"{MODEL}@{good}", "--detach")
        assert created.returncode == 0, created.stderr
        controller = bay.spawn("controller")
        try:
            r = bay.wait_for(lambda r: r.phase is Phase.CANARY, timeout=120)
            os.kill(controller.pid, signal.SIGKILL)
            controller.wait(timeout=10)
            killed_at = bay.ledger.get(r.id)
            routes_then = bay.routes()
            time.sleep(2)
            assert bay.ledger.get(r.id).step_index == killed_at.step_index  # nothing moves it now
            assert bay.routes()["canary_weight"] == routes_then["canary_weight"]  # traffic keeps its split
            controller = bay.spawn("controller")
            r = bay.wait_for(lambda r: r.phase is Phase.AWAITING_APPROVAL, timeout=120)
        finally:
            procs.stop(controller.pid)

        author = bay.run("approve", str(r.id))  # as dana, the author ($LAUNCHBAY_USER)
        assert author.returncode == 4 and "four eyes" in author.stderr
        stranger = bay.run("approve", str(r.id), "--as", "mallory")
        assert stranger.returncode == 4 and "not an approver" in stranger.stderr
        refused = [e for e in bay.events(r) if e.action == "approve-refused"]
        assert [e.actor for e in refused] == ["dana", "mallory"]

        approved = bay.run("approve", str(r.id), "--as", "alice")
        assert approved.returncode == 0, approved.stderr
        assert bay.routes()["stable"]["version"] == good  # type: ignore[index]
        status = json.loads(bay.run("status", "--json").stdout)
        assert str(status["aliases"]["champion"]["version"]) == good
        time.sleep(2)
        rolled = bay.run("rollback", MODEL, "--as", "oncall", "--reason", "pager")
        assert rolled.returncode == 0, rolled.stderr
        time.sleep(0.5)
    assert bay.routes()["stable"]["version"] == "1"  # type: ignore[index]
    # The previous stable stayed warm: the rollback was a route change, not a restart.
    assert procs.ProcessRecord.read(bay.home / "local" / MODEL / "servers" / "v1.json").pid == stable_pid  # type: ignore[union-attr]
    status = json.loads(bay.run("status", "--json").stdout)
    assert str(status["aliases"]["champion"]["version"]) == "1"
    seen = client.summary()
    assert seen["failed"] == 0, seen  # weight changes, a controller crash, promotion and rollback
    assert seen["by_version"].get(good, 0) > 0  # type: ignore[union-attr]
    again = bay.run("rollback", MODEL, "--as", "oncall")
    assert again.returncode == 0 and "already rolled-back" in again.stdout
    history = json.loads(bay.run("history", MODEL, "--json").stdout)
    assert [e["action"] for e in history if e["release_id"] == r.id][-1] == "rollback"
