"""Benchmark: launchbay's service against the MLflow-pyfunc-with-pandas baseline, same model, same load.

For each service (started alone, one worker, on a free port): cold start (process start to the first
good answer), then wrk from a second process at concurrency 1 and 8 (1-row requests): throughput,
p50, p99 and non-2xx answers. Ratios are launchbay / baseline, measured in the same run.

Usage: make bench   (or .venv/bin/python benchmarks/serving/run.py [--seconds 10])
Writes benchmarks/results/serving.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, free_port, post_script, prepare, start, stop, wrk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: run `make bench` (it installs it) or apt-get install wrk")
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(),
        "seconds": args.seconds,
        "services": {},
    }
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as t:
        tmp = Path(t)
        env, serve_argv, model_dir, project = prepare(tmp)
        script = post_script(tmp / "post.lua")
        baseline_env = {
            **env,
            "BASELINE_MODEL_DIR": str(model_dir),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks" / "serving"), str(ROOT)]),
        }
        services = {
            "launchbay": (serve_argv, env),
            "baseline (pyfunc + pandas)": (
                [sys.executable, "-m", "bentoml", "serve", "baseline_service:Baseline"],
                baseline_env,
            ),
        }
        for name, (argv, senv) in services.items():
            port = free_port()
            proc, cold = start(argv, senv, project, port)
            try:
                entry: dict[str, Any] = {"cold_start_s": round(cold, 2)}
                wrk(port, 8, 3, script)  # warm-up, not measured: first calls pay lazy imports and caches
                for c in (1, 8):
                    entry[f"c{c}"] = wrk(port, c, args.seconds, script)
                    print(name, c, entry[f"c{c}"], flush=True)
            finally:
                stop(proc)
            results["services"][name] = entry
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "serving.md").write_text(render(results))
    print(render(results))


def render(r: dict[str, Any]) -> str:
    ours, base = r["services"]["launchbay"], r["services"]["baseline (pyfunc + pandas)"]
    lines = [
        "# Serving: launchbay's service vs MLflow pyfunc + pandas (same model, same requests)",
        "",
        f"Measured {r['when']} on {r['cpus']} CPUs; wrk from a second process, {r['seconds']} s per level,",
        "1-row requests, one worker per service, each service alone on the machine, after a 3 s warm-up.",
        "",
        "| service | cold start s | c=1 req/s | c=1 p50 ms | c=1 p99 ms | c=8 req/s | c=8 p50 ms | c=8 p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in r["services"].items():
        lines.append(
            f"| {name} | {e['cold_start_s']:.2f} | {e['c1']['rps']:.0f} | {e['c1']['p50_ms']:.2f} | "
            f"{e['c1']['p99_ms']:.2f} | {e['c8']['rps']:.0f} | {e['c8']['p50_ms']:.2f} | "
            f"{e['c8']['p99_ms']:.2f} | {e['c1']['non_2xx'] + e['c8']['non_2xx']} |"
        )
    lines += [
        "",
        f"Throughput ratio launchbay / baseline: **{ours['c8']['rps'] / base['c8']['rps']:.2f}x at concurrency 8** "
        f"(goal >= 2.5x), {ours['c1']['rps'] / base['c1']['rps']:.2f}x at concurrency 1.",
        f"p50 ratio at concurrency 8: {ours['c8']['p50_ms'] / base['c8']['p50_ms']:.2f}. "
        f"Cold start ratio: {ours['cold_start_s'] / base['cold_start_s']:.2f} "
        "(launchbay's includes verifying the signature twice before the server starts, and once in it).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
