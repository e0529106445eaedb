"""Benchmark: cold start on the scale-to-zero path, request to first good answer, through the gateway.

A version deployed with `serving.min_instances: 0` is stopped by the gateway after `idle_timeout`
and started again by the next request, which waits for it. This measures what that request
waits, as a client (this script, another process than the gateway and the server) sees it:

* `lean`     -- the lean runtime (what `serving.runtime: auto` serves a scale-to-zero version with);
* `bentoml`  -- the same path with `serving.runtime: bentoml` (the baseline: what it cost before);
* `ceiling`  -- the same work on the leanest stack: a fresh interpreter that imports onnxruntime,
                loads the ONNX graph and scores the row (no HTTP, no gateway, no signature check).

Each runtime gets its own example project (`launchbay run`: version 1 serves, scaled to zero after
1 s idle), then `--samples` cold starts, each after the server was seen stopped. Also reported: the
lean runtime started directly (no gateway), and the gateway's own cold-start histogram.

Usage: .venv/bin/python benchmarks/cold_start.py [--samples 7]
Writes benchmarks/results/cold_start.{json,md}. Goal (issue 14): <= 1.0 s (Lambda quotes 200-800 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import BODY, RESULTS, ROOT, free_port, start, stop

sys.path.insert(0, str(ROOT / "tests"))
from projects import write_project

from launchbay import procs
from launchbay.checks.signature import generate_keypair
from launchbay.rollout.local.supervisor import GatewayRecord

HEADERS = {"content-type": "application/json"}
CEILING = """
import sys, time
t0 = time.perf_counter()
import json
from pathlib import Path
import numpy as np
from launchbay.serving.lean_model import load_variant
scorer = load_variant(Path(sys.argv[1]))
row = json.loads(sys.argv[2])["rows"][0]
features = list(json.loads((Path(sys.argv[1]) / "serving.json").read_text())["features"])
print(float(scorer([[row[f] for f in features]])[0, 1]))
"""


def _project(tmp: Path, runtime: str) -> tuple[Path, Path, dict[str, str]]:
    home = tmp / f"home-{runtime}"
    generate_keypair(home / "keys")
    config = write_project(
        tmp / f"project-{runtime}",
        rows=5000,
        overrides={"serving.min_instances": 0, "serving.idle_timeout": "1s", "serving.runtime": runtime},
    )
    env = {**os.environ, "LAUNCHBAY_HOME": str(home), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    res = subprocess.run(
        [sys.executable, "-m", "launchbay", "run"], cwd=config.parent, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(res.stdout[-3000:] + res.stderr[-3000:])
    return config.parent, home, env


def _stopped(servers: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = procs.ProcessRecord.read(servers / "v1.json")
        if rec is not None and rec.scaled_to_zero and not rec.running:
            return
        time.sleep(0.1)
    raise SystemExit("version 1 was not scaled to zero")


def through_gateway(tmp: Path, runtime: str, samples: int) -> dict[str, Any]:
    project, home, env = _project(tmp, runtime)
    servers = home / "local" / "fraud-detector" / "servers"
    gateway = GatewayRecord.read(home / "local" / "fraud-detector" / "gateway.json")
    assert gateway is not None
    waits = []
    try:
        with httpx.Client(timeout=120) as client:
            for _ in range(samples):
                _stopped(servers)
                time.sleep(0.5)  # the reaper's bookkeeping settles; the machine is quiet
                t0 = time.perf_counter()
                r = client.post(gateway.url + "/predict", content=BODY, headers=HEADERS)
                waits.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise SystemExit(f"{runtime}: cold request answered {r.status_code}: {r.text}")
                print(runtime, f"{waits[-1]:.3f} s", flush=True)
        metrics = httpx.get(gateway.url + "/metrics").text
        total = float(re.findall(r'launchbay_gateway_cold_start_seconds_sum\{version="1"\} (\S+)', metrics)[0])
        count = float(re.findall(r'launchbay_gateway_cold_start_seconds_count\{version="1"\} (\S+)', metrics)[0])
        model_dir = next(home.glob("bentoml/models/fraud-detector/v1/signed"))
        src = next(home.glob("bentoml/bentos/fraud-detector/v1/src"))
    finally:
        subprocess.run([sys.executable, "-m", "launchbay", "down"], cwd=project, env=env, capture_output=True)
    return {
        "client_s": [round(w, 3) for w in waits],
        "median_s": round(statistics.median(waits), 3),
        "max_s": round(max(waits), 3),
        "gateway_mean_s": round(total / count, 3),
        "model_dir": str(model_dir),
        "src": str(src),
        "home": str(home),
        "project": str(project),
    }


def direct(lean: dict[str, Any], samples: int) -> dict[str, Any]:
    """The lean runtime started by hand (no gateway, no launcher): process start to first answer."""
    home = Path(lean["home"])
    env = {
        **os.environ,
        "BENTOML_HOME": str(home / "bentoml"),
        "LAUNCHBAY_MODEL": "fraud-detector:v1",
        "LAUNCHBAY_TRUSTED_KEYS": str(home / "keys" / "signing-key.pub"),
    }
    waits = []
    for _ in range(samples):
        port = free_port()
        proc, cold = start([sys.executable, "-m", "launchbay.serving.lean"], env, Path(lean["src"]), port)
        stop(proc)
        waits.append(cold)
    return {"s": [round(w, 3) for w in waits], "median_s": round(statistics.median(waits), 3)}


def ceiling(lean: dict[str, Any], samples: int) -> dict[str, Any]:
    waits = []
    env = {**os.environ, "PYTHONPATH": lean["src"]}
    for _ in range(samples):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", CEILING, lean["model_dir"], BODY], check=True, env=env,
                       capture_output=True, cwd=lean["src"])  # fmt: skip
        waits.append(time.perf_counter() - t0)
    return {"s": [round(w, 3) for w in waits], "median_s": round(statistics.median(waits), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="lb-cold-") as t:
        tmp = Path(t)
        results["lean"] = through_gateway(tmp, "lean", args.samples)
        results["lean_direct"] = direct(results["lean"], args.samples)
        results["ceiling"] = ceiling(results["lean"], args.samples)
        results["bentoml"] = through_gateway(tmp, "bentoml", max(3, args.samples // 2))
    for part in ("lean", "bentoml"):
        for key in ("model_dir", "src", "home", "project"):
            results[part].pop(key)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cold_start.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "cold_start.md").write_text(render(results))
    print(render(results))


def render(r: dict[str, Any]) -> str:
    lean, bento, ceil, lean_direct = r["lean"], r["bentoml"], r["ceiling"], r["lean_direct"]
    return "\n".join(
        [
            "# Cold start on the scale-to-zero path: request to first good answer",
            "",
            f"Measured {r['when']} on {r['cpus']} CPUs; the example model (its ONNX variant), one version scaled",
            "to zero after 1 s idle; each sample a fresh cold start seen by a client in another process.",
            "",
            "| path | median s | max s | samples (s) |",
            "|---|---|---|---|",
            f"| lean runtime through the gateway (what a scale-to-zero request waits) | **{lean['median_s']:.3f}** | {lean['max_s']:.3f} | {lean['client_s']} |",
            f"| baseline: BentoML runtime through the gateway | {bento['median_s']:.3f} | {bento['max_s']:.3f} | {bento['client_s']} |",
            f"| lean runtime started directly (no gateway) | {lean_direct['median_s']:.3f} | | {lean_direct['s']} |",
            f"| ceiling: a fresh interpreter loading the ONNX graph and scoring the row | {ceil['median_s']:.3f} | | {ceil['s']} |",
            "",
            f"Gateway's own histogram (server start to ready): lean {lean['gateway_mean_s']:.3f} s, BentoML "
            f"{bento['gateway_mean_s']:.3f} s (mean).",
            f"Lean vs baseline: **{lean['median_s'] / bento['median_s']:.2f}x** the wait; lean vs ceiling: "
            f"{lean['median_s'] / ceil['median_s']:.2f}x (the difference: the HTTP server, the signature check, the "
            "gateway's launch and readiness poll). Goal: <= 1.0 s.",
        ]
    ) + "\n"


if __name__ == "__main__":
    main()
