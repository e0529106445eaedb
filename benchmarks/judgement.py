"""Benchmark (issue 13): the rollout's judgement on real servers -- false rollbacks near the
limits, and how fast each kind of fault is out of traffic.

Real processes throughout: launchbay's gateway, BentoML model servers, Debian's Prometheus (1 s
scrape), the controller (`launchbay release` in the foreground); this script is the clients
(`rollout.traffic`, every answer recorded with its status, version and latency) and the fault
injector. The candidates are the example model; `late` (tests/e2e/rollout_project/faults.py)
misbehaves when the trigger file names a fault: `errors:0.2`, `slow:S`, `flip:0.1`.

* False rollbacks, latency: candidates identical to stable, rolled out (short shadow, canary 25%
  then 50%, promotion) under two busy loops on the 2 cores, with the absolute p95 SLO at 1.2x
  stable's p95 measured under the same load. Goal: <= 1 of 20 rolled back.
* False rollbacks, shadow: a candidate disagreeing with stable on 2.5% of rows (half the 5% limit)
  at 7.5 req/s, so that a 10 s window holds ~75 rows; 20 s of shadow each. Goal: <= 1 of 20.
* Detection at 50 req/s, canary at 25%: 20% errors, 5x latency (a sleep of 4x stable's median),
  hang (SIGSTOP of the candidate's server tree), crash (SIGKILL of it) -> seconds from the fault
  to the last request the candidate touched (answered, or failed and answered by stable); and,
  during a hang, the slowest client request against stable's p99 + 1 s. Disagreement on 10% of
  rows is a model's own behaviour, present from its first answer: seconds from the start of
  shadow to the rollback. Goal: <= 5 s each.
* Drift: `benchmarks/drift.py` (false drift alarms at 100, 500, 5,000 rows), run from here.

    .venv/bin/python benchmarks/judgement.py [--trials 20] [--repeats 3] [--skip-drift]

Writes benchmarks/results/judgement.{json,md}. About 40 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from common import RESULTS, ROOT
from delivery import MODEL, Bench

from launchbay import procs
from launchbay.home import Home
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release
from launchbay.rollout.local.clients import Answer, Clients
from launchbay.rollout.local.prometheus import LocalPrometheus
from launchbay.rollout.metrics.prometheus import PrometheusProvider
from launchbay.rollout.metrics.queries import shadow_queries, version_queries

CONFIDENCE = 0.95
BASE: dict[str, Any] = {
    "shadow": {"duration": "4s", "max_disagreement": 0.05, "max_score_shift": 0.1},
    "steps": [25, 50],
    "interval": "1s",
    "analysis_window": "10s",
    "min_samples": 20,
    "confidence": CONFIDENCE,
    "grace_period": "10m",
    "start_timeout": "120s",
    "slo": {"p95_latency_ms": 500, "max_error_rate": 0.01, "max_p95_ratio_vs_stable": 2.0},
    "approval": {"required": False},
}


def rollout(**changes: Any) -> dict[str, Any]:
    """BASE with some keys replaced (nested dicts merged one level deep)."""
    doc = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        doc[key] = (
            {**doc[key], **value} if isinstance(value, dict) and isinstance(doc.get(key), dict) else value
        )
    return doc


@contextmanager
def busy_loops(n: int = 2) -> Iterator[None]:
    """`n` processes spinning on the CPU (the loaded machine of the issue)."""
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(n)
    ]
    try:
        yield
    finally:
        for p in loops:
            p.kill()
            p.wait()


class Judge(Bench):
    """The bench with what this benchmark adds: Prometheus queries, server processes, releases."""

    def prometheus(self) -> PrometheusProvider:
        rec = LocalPrometheus(Home(self.home)).record
        assert rec is not None, "the local Prometheus is not running"
        return PrometheusProvider(rec.url)

    def stable_latency(self, version: str, seconds: float = 16) -> dict[str, float]:
        """Stable's p50/p95 (ms) over 10 s windows, as the analysis measures them (median of looks)."""
        prom = self.prometheus()
        looks: dict[str, list[float]] = {"p50_ms": [], "p95_ms": []}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            p95 = version_queries(version, "primary", 10)["p95_ms"]
            for name, q in (("p95_ms", p95), ("p50_ms", p95.replace("0.95", "0.5", 1))):
                v = prom.query(q).value
                if v is not None:
                    looks[name].append(v)
            time.sleep(2)
        return {k: round(statistics.median(v), 2) for k, v in looks.items() if v}

    def stable(self) -> str:
        r = self.ledger.releases(MODEL)[0]
        return r.version if r.phase is Phase.PROMOTED else str(r.stable_version)

    def server_tree(self, version: str) -> list[psutil.Process]:
        rec = procs.ProcessRecord.read(self.home / "local" / MODEL / "servers" / f"v{version}.json")
        assert rec is not None and rec.running, f"version {version} has no server"
        root = psutil.Process(rec.pid)
        return [root, *root.children(recursive=True)]

    def release(self, version: str) -> tuple[subprocess.Popen[bytes], float]:
        """Start `launchbay release` in the foreground (its own process); return it and the time."""
        started = time.time()
        return self.spawn("release", f"{MODEL}@{version}"), started

    def event_at(self, r: Release, action: str) -> float | None:
        return next((e.at for e in self.ledger.history(release_id=r.id) if e.action == action), None)


def _ended(b: Judge, version: str, since: float, timeout: float = 300) -> Release:
    return b.wait(lambda r: r.version == version and r.created_at >= since - 1 and r.phase.final, timeout)


def false_rollbacks_latency(b: Judge, versions: list[str], trials: int) -> dict[str, Any]:
    with busy_loops(), Clients(b.gateway, b.rows, rate=50.0, threads=8) as client:
        time.sleep(4)
        stable = b.stable()
        measured = b.stable_latency(stable)
        slo = round(1.2 * measured["p95_ms"], 1)
        b.configure(rollout(slo={"p95_latency_ms": slo}))
        outcomes = []
        for i in range(trials):
            candidate = next(v for v in versions if v != b.stable())
            proc, started = b.release(candidate)
            try:
                proc.wait(timeout=240)
                outcome = _outcome(b, _ended(b, candidate, started), started)
            except subprocess.TimeoutExpired:
                # Held (e.g. stable breaking the SLO too, which holds by default): neither a
                # promotion nor a false rollback. Recorded with the last reason, then aborted.
                held = b.latest()
                outcome = {**_outcome(b, held, started), "phase": "held"}
                b.lb("abort", str(held.id), "--as", "oncall", "--reason", "benchmark: held for 240 s")
                proc.wait(timeout=120)
            outcomes.append(outcome)
            print(f"  latency trial {i + 1}/{trials}: {outcomes[-1]['phase']} {outcomes[-1]['why'][:120]}")
        s = client.summary()
    rolled = [o for o in outcomes if o["phase"] not in {"promoted", "held"}]
    return {
        "stable_under_load": measured,
        "slo_p95_ms": slo,
        "trials": trials,
        "rolled_back": len(rolled),
        "reasons": [o["why"] for o in rolled],
        "held": [o["why"] for o in outcomes if o["phase"] == "held"],
        "median_rollout_s": statistics.median(o["seconds"] for o in outcomes),
        "client_requests": s["requests"],
        "client_failed": s["failed"],
    }


def _outcome(b: Judge, r: Release, started: float) -> dict[str, Any]:
    last = b.ledger.history(release_id=r.id)[-1]
    return {"phase": r.phase.value, "why": last.reason, "seconds": round(last.at - started, 1)}


def false_rollbacks_shadow(b: Judge, candidate: str, trials: int) -> dict[str, Any]:
    b.configure(rollout(shadow={"duration": "20s"}, min_samples=30))
    b.trigger.write_text("flip:0.025")
    outcomes = []
    with Clients(b.gateway, b.rows, rate=7.5, threads=3) as client:
        time.sleep(2)
        for i in range(trials):
            proc, started = b.release(candidate)
            r, looks = _watch_shadow(b, candidate, started)
            if r.phase is Phase.CANARY:
                b.lb("abort", str(r.id), "--as", "oncall", "--reason", "benchmark: shadow passed")
            proc.wait(timeout=120)
            why = "" if r.phase is Phase.CANARY else b.ledger.history(release_id=r.id)[-1].reason
            outcomes.append({"passed": r.phase is Phase.CANARY, "why": why, **looks})
            print(
                f"  shadow trial {i + 1}/{trials}: {'passed' if outcomes[-1]['passed'] else 'ROLLED BACK'} {looks}"
            )
        s = client.summary()
    b.trigger.unlink(missing_ok=True)
    rolled = [o for o in outcomes if not o["passed"]]
    rows = [o["rows_per_window"] for o in outcomes if o["rows_per_window"] is not None]
    return {
        "trials": trials,
        "rolled_back": len(rolled),
        "reasons": [o["why"] for o in rolled],
        "rows_per_window_median": statistics.median(rows) if rows else None,
        "disagreement_over_all_windows": round(
            sum(o["differing"] for o in outcomes) / max(sum(o["compared"] for o in outcomes), 1), 4
        ),
        "largest_window_disagreement": max((o["largest"] for o in outcomes), default=None),
        "client_failed": s["failed"],
    }


def _watch_shadow(b: Judge, candidate: str, started: float) -> tuple[Release, dict[str, Any]]:
    """Wait for the release to leave shadow, looking at its 10 s windows in Prometheus meanwhile
    (rows compared, and the largest point estimate of disagreement a window showed)."""
    prom = b.prometheus()
    windows: list[tuple[float, float]] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        r = b.latest()
        if r.version == candidate and r.created_at >= started - 1:
            if r.phase is Phase.CANARY or r.phase.final:
                break
            if r.phase is Phase.SHADOW and r.stable_version:
                q = shadow_queries(r.stable_version, candidate, 10)
                n, share = prom.query(q["compared"]).value, prom.query(q["disagreement"]).value
                if n and share is not None:
                    windows.append((n, share))
        time.sleep(1)
    else:
        raise SystemExit(f"shadow did not end: {b.latest()}")
    return r, {
        "rows_per_window": round(statistics.median(n for n, _ in windows)) if windows else None,
        "compared": sum(n for n, _ in windows[::10]),  # every 10th look: disjoint windows
        "differing": sum(n * d for n, d in windows[::10]),
        "largest": round(max((d for _, d in windows), default=0.0), 4),
    }


Fault = Callable[[Judge, str], Callable[[], None]]


def _trigger(content: str) -> Fault:
    def inject(b: Judge, version: str) -> Callable[[], None]:
        b.trigger.write_text(content)
        return lambda: b.trigger.unlink(missing_ok=True)

    return inject


def _signal(sig: signal.Signals) -> Fault:
    def inject(b: Judge, version: str) -> Callable[[], None]:
        tree = b.server_tree(version)
        for p in tree:
            p.send_signal(sig)

        def undo() -> None:
            for p in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.send_signal(signal.SIGKILL)  # a stopped tree is not left behind

        return undo

    return inject


def detection(b: Judge, candidate: str, name: str, fault: Fault, p99_s: float) -> dict[str, Any]:
    """One canary fault at 50 req/s: seconds from the fault to the candidate's last request."""
    b.configure(
        rollout(shadow={"duration": "2s"}, steps=[{"set_weight": 25}, {"analysis": {"duration": "5m"}}])
    )
    b.trigger.unlink(missing_ok=True)
    with Clients(b.gateway, b.rows, rate=50.0, threads=8) as client:
        proc, started = b.release(candidate)
        r = b.wait(
            lambda r: r.version == candidate and r.created_at >= started - 1
            and (r.phase is Phase.CANARY or r.phase.final), 300,
        )  # fmt: skip
        if r.phase is not Phase.CANARY:  # on record as a failed run, not the end of the benchmark
            proc.wait(timeout=120)
            return {"fault": name, "phase": f"{r.phase.value} before the fault",
                    "why": b.ledger.history(release_id=r.id)[-1].reason}  # fmt: skip
        time.sleep(4)  # a few passing analyses at 25%
        t0 = time.time()
        undo = fault(b, candidate)
        try:
            r = _ended(b, candidate, started, timeout=120)
            time.sleep(2)
        finally:
            undo()
        proc.wait(timeout=120)
    answers = [a for a in client.snapshot() if a.at >= t0]
    return _detected(b, r, name, candidate, t0, answers, p99_s)


def _detected(
    b: Judge, r: Release, name: str, candidate: str, t0: float, answers: list[Answer], p99_s: float
) -> dict[str, Any]:
    touched = [a for a in answers if a.version == candidate or a.retried_from == candidate]
    last = max((a.at for a in touched), default=t0)
    rollback = b.event_at(r, "rollback")
    slowest = max((a.latency for a in answers if a.at <= last + 1), default=0.0)
    return {
        "fault": name,
        "phase": r.phase.value,
        "seconds_to_last_candidate_request": round(last - t0, 2),
        "seconds_to_rollback_recorded": round(rollback - t0, 2) if rollback else None,
        "slowest_client_request_s": round(slowest, 3),
        "stable_p99_plus_1_s": round(p99_s + 1, 3),
        "failed_client_requests": sum(1 for a in answers if not 200 <= a.status < 300),
        "why": b.ledger.history(release_id=r.id)[-1].reason,
    }


def disagreement(b: Judge, candidate: str) -> dict[str, Any]:
    """A candidate disagreeing on 10% of rows from its first answer, in shadow at 50 req/s."""
    b.configure(rollout(shadow={"duration": "60s"}))
    b.trigger.write_text("flip:0.1")
    try:
        with Clients(b.gateway, b.rows, rate=50.0, threads=8):
            proc, started = b.release(candidate)
            r = _ended(b, candidate, started, timeout=180)
            proc.wait(timeout=120)
    finally:
        b.trigger.unlink(missing_ok=True)
    shadow_at = next(
        e.at for e in b.ledger.history(release_id=r.id) if e.action == "step" and e.phase_to == "shadow"
    )
    rollback = b.event_at(r, "rollback") or b.ledger.history(release_id=r.id)[-1].at
    return {
        "fault": "disagreement on 10% of rows (shadow)",
        "phase": r.phase.value,
        "seconds_shadow_start_to_rollback": round(rollback - shadow_at, 2),
        "why": b.ledger.history(release_id=r.id)[-1].reason,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-drift", action="store_true")
    parser.add_argument("--only", choices=["latency", "shadow", "detection"], action="append")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the parts of benchmarks/results/judgement.json that this run does not measure",
    )
    args = parser.parse_args()
    parts = set(args.only or ["latency", "shadow", "detection"])
    doc: dict[str, Any] = {"measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                           "cpus": os.cpu_count(), "confidence": CONFIDENCE}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lb-bench-judgement-") as tmp:
        b = Judge(Path(tmp), rollout())
        try:
            versions = b.prepare("good", "late")
            print(f"prepared: stable 1, candidates {versions}")
            with Clients(b.gateway, b.rows, rate=50.0, threads=8) as client:
                time.sleep(4)
                since = time.time()
                doc["stable_unloaded"] = b.stable_latency(b.stable())
                ok = sorted(a.latency for a in client.snapshot() if a.at >= since and a.status == 200)
            p99_s = ok[int(0.99 * (len(ok) - 1))]
            doc["stable_unloaded"]["client_p99_ms"] = round(p99_s * 1000, 1)
            print(f"stable unloaded: {doc['stable_unloaded']}")
            if "latency" in parts:
                doc["latency"] = false_rollbacks_latency(b, ["1", versions["good"]], args.trials)
                print(doc["latency"])
            if "shadow" in parts:
                doc["shadow"] = false_rollbacks_shadow(b, versions["late"], args.trials)
                print(doc["shadow"])
            if "detection" in parts:
                sleep = round(4 * doc["stable_unloaded"]["p50_ms"] / 1000, 4)
                faults: dict[str, Fault] = {
                    "20% errors": _trigger("errors:0.2"),
                    f"5x latency (+{sleep * 1000:g} ms)": _trigger(f"slow:{sleep}"),
                    "hang (SIGSTOP)": _signal(signal.SIGSTOP),
                    "crash (SIGKILL)": _signal(signal.SIGKILL),
                }
                runs: list[dict[str, Any]] = []
                for _ in range(args.repeats):
                    for name, fault in faults.items():
                        runs.append(detection(b, versions["late"], name, fault, p99_s))
                        print(f"  {runs[-1]}")
                    runs.append(disagreement(b, versions["late"]))
                    print(f"  {runs[-1]}")
                doc["detection"] = runs
        finally:
            b.down()
    if args.keep and (RESULTS / "judgement.json").exists():
        earlier = json.loads((RESULTS / "judgement.json").read_text())
        for part in ("latency", "shadow", "detection"):
            if part not in doc and part in earlier:
                doc[part] = earlier[part]
                doc.setdefault("kept_from_earlier_run", []).append(f"{part} ({earlier['measured_at']})")
    if not args.skip_drift:
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "drift.py")], check=True)
        doc["drift"] = json.loads((RESULTS / "drift.json").read_text())
    write(doc)


def write(doc: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "judgement.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# Judgement on real servers (issue 13)",
        "",
        f"Measured {doc['measured_at']} on {doc['cpus']} CPUs by `benchmarks/judgement.py`; confidence "
        f"{doc['confidence']}, 1 s interval, 10 s analysis window, 1 s Prometheus scrape.",
        f"Stable unloaded (gateway histogram, 10 s windows): {doc.get('stable_unloaded')}.",
        *(
            [f"Kept from an earlier run: {', '.join(doc['kept_from_earlier_run'])}."]
            if doc.get("kept_from_earlier_run")
            else []
        ),
        "",
    ]
    if "latency" in doc:
        lat = doc["latency"]
        lines += [
            "## False rollbacks near the limits",
            "",
            "| setting | rolled back | goal |",
            "|---|---|---|",
            f"| latency: identical candidate, 2 busy loops on 2 cores, p95 SLO {lat['slo_p95_ms']} ms = 1.2x "
            f"stable's p95 under that load ({lat['stable_under_load']}), 50 req/s | "
            f"{lat['rolled_back']} of {lat['trials']}"
            + (f" (held over 240 s: {len(lat['held'])})" if lat.get("held") else "")
            + " | <= 1 of 20 |",
        ]
    if "shadow" in doc:
        sh = doc["shadow"]
        lines += [
            f"| shadow: disagreement 2.5% vs limit 5% (measured {sh['disagreement_over_all_windows']:.2%}), 7.5 "
            f"req/s, {sh['rows_per_window_median']} rows per 10 s window (median), 20 s of shadow; largest "
            f"window's point estimate {sh['largest_window_disagreement']:.2%} | "
            f"{sh['rolled_back']} of {sh['trials']} | <= 1 of 20 |",
        ]
    for part in ("latency", "shadow"):
        for why in doc.get(part, {}).get("reasons", []):
            lines.append(f"\n{part} rollback: {why}")
    if "detection" in doc:
        lines += ["", "## Detection (50 req/s, canary at 25%)", "",
                  "| fault | runs | seconds to the candidate's last request (median / max) | slowest client request | goal |",
                  "|---|---|---|---|---|"]  # fmt: skip
        by: dict[str, list[dict[str, Any]]] = {}
        for run in doc["detection"]:
            by.setdefault(run["fault"], []).append(run)
        for fault, runs in by.items():
            key = (
                "seconds_to_last_candidate_request"
                if "shadow" not in fault
                else "seconds_shadow_start_to_rollback"
            )
            t = [r[key] for r in runs if r["phase"] == "rolled-back" and key in r]
            slow = max((r.get("slowest_client_request_s", 0) for r in runs), default=0)
            bound = runs[0].get("stable_p99_plus_1_s")
            lines.append(
                f"| {fault} | {len(t)}/{len(runs)} rolled back | "
                f"{statistics.median(t) if t else '-'} / {max(t) if t else '-'} | "
                f"{slow if bound else '-'} s{f' (bound {bound} s)' if bound else ''} | <= 5 s |"
            )
        lines += ["", "Reasons recorded (first run of each):", ""]
        lines += [f"- {f}: {runs[0]['why'].splitlines()[0]}" for f, runs in by.items()]
    if "drift" in doc:
        lines += ["", "## Drift gate", "", "See `drift.md` (run from this benchmark): "
                  + "; ".join(f"{rows} rows: {d['false_alarms_after']}/{doc['drift']['samples']} false alarms, "
                              f"drifted stopped {d['drifted_stopped_after']}/{d['drifted_samples']}"
                              for rows, d in doc["drift"]["sizes"].items())]  # fmt: skip
    (RESULTS / "judgement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
