"""Benchmark: launchbay's two runtimes against the baseline and the ceiling, same model, same load.

Services, each started alone (one worker, a free port) from the same signed, packaged example:

* `lean`      -- `launchbay serve --runtime lean`: uvicorn + the ONNX variant, verified before load;
* `bentoml`   -- `launchbay serve --runtime bentoml`: the Bento's BentoML service (ONNX variant too);
* `baseline`  -- MLflow pyfunc called with a pandas DataFrame in a BentoML service (the common default);
* `ceiling`   -- uvicorn + Starlette doing the same pydantic validation and the same ONNX model call,
                 nothing else (benchmarks/serving/ceiling_app.py): the leanest Python stack.

For each: cold start (process start to the first good answer), then wrk from a second process at
concurrency 1 and 8 (1-row requests): throughput, p50, p99, non-2xx. The services are measured in
rounds, in turn, so that the machine's drift reaches every service alike; a round's ratios are
computed within the round. Goals (issue 14): lean >= 90% of the ceiling's throughput at c=8 with
p99 <= 2x the ceiling's.

Usage: make bench   (or .venv/bin/python benchmarks/serving/run.py [--seconds 10] [--rounds 2])
Writes benchmarks/results/serving.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, free_port, post_script, prepare, start, stop, wrk  # noqa: E402

SERVICES = ("lean", "ceiling", "bentoml", "baseline")


def commands(env: dict[str, str], serve: list[str], model_dir: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    here = str(ROOT / "benchmarks" / "serving")
    example = str(ROOT / "examples" / "fraud-detector")  # the model's own feature code
    baseline_env = {**env, "BASELINE_MODEL_DIR": str(model_dir), "PYTHONPATH": os.pathsep.join([here, example])}
    ceiling_env = {**env, "CEILING_MODEL_DIR": str(model_dir), "PYTHONPATH": os.pathsep.join([here, example])}
    uvicorn = [sys.executable, "-m", "uvicorn", "ceiling_app:app", "--loop", "uvloop", "--http", "httptools",
               "--no-access-log", "--log-level", "warning"]  # fmt: skip
    return {
        "lean": ([*serve, "--runtime", "lean"], env),
        "ceiling": (uvicorn, ceiling_env),
        "bentoml": ([*serve, "--runtime", "bentoml"], env),
        "baseline": ([sys.executable, "-m", "bentoml", "serve", "baseline_service:Baseline"], baseline_env),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: run `make bench` (it installs it) or apt-get install wrk")
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(),
        "seconds": args.seconds,
        "rounds": [],
    }
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as t:
        tmp = Path(t)
        env, serve, model_dir, project = prepare(tmp)
        results["variant"] = "onnx" if (model_dir / "onnx" / "variant.json").exists() else "native"
        script = post_script(tmp / "post.lua")
        cmds = commands(env, serve, model_dir)
        for r in range(args.rounds):
            entry: dict[str, Any] = {}
            for name in SERVICES:
                argv, senv = cmds[name]
                port = free_port()
                proc, cold = start(argv, senv, project, port)
                try:
                    measured: dict[str, Any] = {"cold_start_s": round(cold, 3)}
                    wrk(port, 8, 3, script)  # warm-up, not measured: first calls pay lazy imports and caches
                    for c in (1, 8):
                        measured[f"c{c}"] = wrk(port, c, args.seconds, script)
                        print(f"round {r + 1} {name} c={c}", measured[f"c{c}"], flush=True)
                finally:
                    stop(proc)
                entry[name] = measured
            results["rounds"].append(entry)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "serving.md").write_text(render(results))
    print(render(results))


def _ratios(entry: dict[str, Any], name: str, against: str) -> tuple[float, float]:
    a, b = entry[name]["c8"], entry[against]["c8"]
    return a["rps"] / b["rps"], a["p99_ms"] / b["p99_ms"]


def render(r: dict[str, Any]) -> str:
    rounds = r["rounds"]
    lines = [
        "# Serving: launchbay's runtimes vs the MLflow-pyfunc baseline and the leanest-stack ceiling",
        "",
        f"Measured {r['when']} on {r['cpus']} CPUs; the example model ({r['variant']} variant served); wrk from",
        f"a second process, {r['seconds']} s per level, 1-row requests, one worker per service, each service",
        f"alone on the machine after a 3 s warm-up; {len(rounds)} rounds, the services in turn within each.",
        "",
        "| round | service | cold start s | c=1 req/s | c=1 p50 ms | c=1 p99 ms | c=8 req/s | c=8 p50 ms | c=8 p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, entry in enumerate(rounds, 1):
        for name, e in entry.items():
            lines.append(
                f"| {i} | {name} | {e['cold_start_s']:.2f} | {e['c1']['rps']:.0f} | {e['c1']['p50_ms']:.2f} | "
                f"{e['c1']['p99_ms']:.2f} | {e['c8']['rps']:.0f} | {e['c8']['p50_ms']:.2f} | "
                f"{e['c8']['p99_ms']:.2f} | {e['c1']['non_2xx'] + e['c8']['non_2xx']} |"
            )
    lines += ["", "Ratios at concurrency 8, within each round (throughput; p99):", ""]
    lines += ["| round | lean / ceiling | bentoml / ceiling | lean / baseline | bentoml / baseline |", "|---|---|---|---|---|"]
    for i, entry in enumerate(rounds, 1):
        cells = [_ratios(entry, a, b) for a, b in (("lean", "ceiling"), ("bentoml", "ceiling"), ("lean", "baseline"), ("bentoml", "baseline"))]
        lines.append(f"| {i} | " + " | ".join(f"{t:.2f}x; p99 {p:.2f}x" for t, p in cells) + " |")
    lean_t = statistics.mean(_ratios(e, "lean", "ceiling")[0] for e in rounds)
    lean_p = statistics.mean(_ratios(e, "lean", "ceiling")[1] for e in rounds)
    cold = statistics.median(e["lean"]["cold_start_s"] for e in rounds)
    bento_cold = statistics.median(e["bentoml"]["cold_start_s"] for e in rounds)
    lines += [
        "",
        f"Lean runtime vs ceiling (mean of rounds): **{100 * lean_t:.0f}% of its throughput at c=8** (goal >= 90%), "
        f"**p99 {lean_p:.2f}x** (goal <= 2x).",
        f"Cold start, process start to first good answer (median): lean {cold:.2f} s, BentoML {bento_cold:.2f} s "
        "(both verify the signature before loading; `launchbay serve` also verifies the registry's and the "
        "Bento's copies before the server starts). The scale-to-zero path through the gateway: "
        "benchmarks/results/cold_start.md.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
