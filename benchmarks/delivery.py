"""Benchmark: rollouts on the local target as clients see them.

A client process (this script; the gateway, the model servers, Prometheus and the controller are
other processes) sends steady traffic through the gateway and records, for every request, when it
was answered, the status, and which version answered (`X-Launchbay-Version`). Three runs:

* switching: a healthy candidate through shadow, canary weights, approval, promotion and an
  on-call rollback, with the controller SIGKILLed and restarted mid-canary -> failed requests;
* shadow-visible fault: a candidate failing 20% of requests -> failed client requests (target 0);
* time to rollback: a candidate healthy until a trigger file appears mid-canary, then failing half
  of its requests -> seconds from the trigger to the last answer from the candidate (target <= 5 s
  at a 1 s interval), and the failed share of all requests over the whole rollout (<= 0.5%).

    python benchmarks/delivery.py   ->  benchmarks/results/delivery.{json,md}
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import RESULTS, ROOT

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples" / "fraud-detector"))  # the example's model and data

import people
from fraud_model import FEATURES
from projects import write_project

from launchbay import procs
from launchbay.checks.signature import generate_keypair
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.local.clients import Clients, sample_rows
from launchbay.rollout.local.supervisor import GatewayRecord

MODEL = "fraud-detector"
RATE = 100.0
ROLLOUT = {
    "shadow": {"duration": "5s", "max_disagreement": 0.05, "max_score_shift": 0.1},
    "steps": [25, 50],
    "interval": "1s",
    "analysis_window": "5s",
    "min_samples": 20,
    "grace_period": "10m",
    "slo": {"p95_latency_ms": 500, "max_error_rate": 0.01, "max_p95_ratio_vs_stable": 2.0},
    "approval": {"required": True, "approvers": people.approvers("alice")},
}


class Bench:
    """The example project with fault-injecting candidates, driven through the CLI."""

    def __init__(self, tmp: Path, rollout: dict[str, Any] | None = None) -> None:
        self.root = tmp / "project"
        self.home = tmp / "home"
        self.trigger = tmp / "trigger"
        generate_keypair(self.home / "keys")
        self.config = write_project(self.root, rows=5000, overrides={"rollout": rollout or ROLLOUT})
        shutil.copy(ROOT / "tests" / "e2e" / "rollout_project" / "faults.py", self.root / "faults.py")
        self.env = {
            **os.environ,
            "LAUNCHBAY_HOME": str(self.home),
            "LAUNCHBAY_USER": "dana",
            "XDG_CONFIG_HOME": str(people.CONFIG_HOME),  # alice's approver key, where she keeps it
            "FAULT_TRIGGER": str(self.trigger),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        self.env.pop("MLFLOW_TRACKING_URI", None)
        self.ledger = SqlLedger(f"sqlite:///{self.home / 'ledger.db'}")
        self.rows: list[dict[str, Any]] = []

    def lb(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "launchbay", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return res

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "launchbay", *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def configure(self, rollout: dict[str, Any]) -> None:
        """Replace the project's `rollout:` section (the next release reads it)."""
        doc = yaml.safe_load(self.config.read_text())
        doc["rollout"] = rollout
        self.config.write_text(yaml.safe_dump(doc, sort_keys=False))

    def prepare(self, *kinds: str) -> dict[str, str]:
        """Train and serve the example (version 1), then register candidates of `kinds`."""
        res = self.lb("run")
        if res.returncode != 0:
            raise SystemExit(res.stdout + res.stderr)
        made = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests" / "e2e" / "candidates.py"),
                str(self.config),
                "data/transactions.parquet",
                *(kinds or ("good", "errors", "trigger")),
            ],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.rows = sample_rows(str(self.root / "data" / "transactions.parquet"), FEATURES, n=500)
        versions: dict[str, str] = json.loads(made.stdout.strip().splitlines()[-1])
        return versions

    @property
    def gateway(self) -> str:
        rec = GatewayRecord.read(self.home / "local" / MODEL / "gateway.json")
        assert rec is not None
        return rec.url

    def latest(self) -> Release:
        return self.ledger.releases(MODEL)[0]

    def wait(self, ok: Any, timeout: float = 180) -> Release:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.latest()
            if ok(r):
                return r
            time.sleep(0.1)
        raise SystemExit(f"timed out waiting; latest {self.latest()}")

    def traffic(self) -> Clients:
        return Clients(self.gateway, self.rows, rate=RATE, threads=8)

    def down(self) -> None:
        self.lb("down", timeout=120)


def switching(b: Bench, good: str) -> dict[str, Any]:
    with b.traffic() as client:
        time.sleep(2)
        b.lb("release", f"{MODEL}@{good}", "--detach")
        controller = b.spawn("controller")
        b.wait(lambda r: r.phase is Phase.CANARY and r.step_index >= 2)
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait()
        time.sleep(3)
        controller = b.spawn("controller")
        r = b.wait(lambda r: r.phase is Phase.AWAITING_APPROVAL)
        procs.stop(controller.pid)
        approved = b.lb("approve", str(r.id), "--as", "alice")
        assert approved.returncode == 0, approved.stderr
        time.sleep(3)
        rolled = b.lb("rollback", MODEL, "--as", "oncall")
        assert rolled.returncode == 0, rolled.stderr
        time.sleep(3)
    s = client.summary()
    return {
        "requests": s["requests"],
        "failed": s["failed"],
        "answered_by": s["by_version"],
        "duration_s": round(client.answers[-1].at - client.answers[0].at, 1),
    }


def shadow_fault(b: Bench, errors: str) -> dict[str, Any]:
    with b.traffic() as client:
        time.sleep(1)
        res = b.lb("release", f"{MODEL}@{errors}")
        time.sleep(1)
    s = client.summary()
    r = b.latest()
    return {
        "phase": r.phase.value,
        "requests": s["requests"],
        "failed": s["failed"],
        "answered_by_candidate": s["by_version"].get(errors, 0),
        "exit_code": res.returncode,
    }


def time_to_rollback(b: Bench, trigger: str) -> dict[str, Any]:
    b.trigger.unlink(missing_ok=True)
    with b.traffic() as client:
        time.sleep(1)
        started = time.time()
        proc = b.spawn("release", f"{MODEL}@{trigger}")
        b.wait(lambda r: r.version == trigger and r.phase is Phase.CANARY and r.step_index >= 2)
        time.sleep(3)  # a few passing analyses at 25%
        t0 = time.time()
        b.trigger.touch()
        r = b.wait(lambda r: r.version == trigger and not r.phase.live)
        proc.wait(timeout=120)
        time.sleep(2)
        ended = time.time()
    answers = [a for a in client.snapshot() if started <= a.at <= ended]
    after = [a for a in answers if a.at >= t0]
    # The candidate's last request: answered by it, or failed by it and retried on stable.
    touched = [a for a in after if a.version == trigger or a.retried_from == trigger]
    first_failure = next(
        (a.at for a in after if a.retried_from == trigger or not 200 <= a.status < 300), None
    )
    last_candidate = max((a.at for a in touched), default=t0)
    failed = [a for a in answers if not 200 <= a.status < 300]
    retried = [a for a in answers if a.retried_from == trigger]
    rollback_event = next(e for e in b.ledger.history(release_id=r.id) if e.action == "rollback")
    return {
        "phase": r.phase.value,
        "reason": rollback_event.reason,
        "seconds_trigger_to_last_candidate_answer": round(last_candidate - t0, 2),
        "seconds_first_failure_to_last_candidate_answer": round(last_candidate - (first_failure or t0), 2),
        "seconds_trigger_to_rollback_recorded": round(rollback_event.at - t0, 2),
        "requests_whole_rollout": len(answers),
        "failed_whole_rollout": len(failed),
        "blast_radius_percent": round(100 * len(failed) / max(len(answers), 1), 3),
        "canary_failures_retried_on_stable": len(retried),
        "canary_failure_percent_without_retry": round(100 * (len(failed) + len(retried)) / max(len(answers), 1), 3),
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lb-bench-rollout-") as tmp:
        b = Bench(Path(tmp))
        try:
            versions = b.prepare()
            results = {
                "rate_rps": RATE,
                "interval_s": 1.0,
                "switching": switching(b, versions["good"]),
                "shadow_fault": shadow_fault(b, versions["errors"]),
                "time_to_rollback": time_to_rollback(b, versions["trigger"]),
            }
        finally:
            b.down()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "delivery.json").write_text(json.dumps(results, indent=2) + "\n")
    sw, sf, tr = results["switching"], results["shadow_fault"], results["time_to_rollback"]
    md = f"""# Rollouts as clients see them (local target, {RATE:g} req/s, 1 s analysis interval)

Measured by `benchmarks/delivery.py`: a client process records every answer's status and version.

| figure | measured | target |
|---|---|---|
| time to rollback: trigger -> last answer from the candidate | {tr['seconds_trigger_to_last_candidate_answer']} s | <= 5 s |
| same, from the first failed request the client saw | {tr['seconds_first_failure_to_last_candidate_answer']} s | |
| blast radius of a candidate going bad at 25% canary (failed client requests) | {tr['failed_whole_rollout']} of {tr['requests_whole_rollout']} = {tr['blast_radius_percent']}% | <= 0.5% |
| same, canary failures the gateway retried on stable (what clients would have seen without the retry) | {tr['canary_failures_retried_on_stable']} = {tr['canary_failure_percent_without_retry']}% | |
| blast radius of a candidate failing 20% (seen in shadow) | {sf['failed']} of {sf['requests']} ({sf['phase']}) | 0 |
| failed requests while switching (weights, controller SIGKILL, promotion, rollback) | {sw['failed']} of {sw['requests']} | 0 |

Rollback reason recorded: {tr['reason']}

Answers by version while switching: {sw['answered_by']}.
"""
    (RESULTS / "delivery.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
