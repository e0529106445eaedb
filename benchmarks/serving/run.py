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
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "benchmarks" / "results"

from projects import RISKY_ROW  # noqa: E402

BODY = json.dumps({"rows": [RISKY_ROW]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(tmp: Path) -> tuple[dict[str, str], list[str], Path, Path]:
    """Train, sign and package the example; return (env, launchbay serve argv, model dir, project dir)."""
    from projects import write_project

    from checks.signature import generate_keypair

    home = tmp / "home"
    generate_keypair(home / "keys")
    config = write_project(tmp / "project", rows=20_000)
    env = {**os.environ, "LAUNCHBAY_HOME": str(home), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    res = subprocess.run(
        [sys.executable, "-m", "launchbay", "run"],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if res.returncode != 0:
        raise SystemExit(res.stdout + res.stderr)
    (model_dir,) = home.glob("bentoml/models/fraud-detector/v1/signed")
    argv = [sys.executable, "-m", "launchbay", "serve", "fraud-detector@1"]
    return env, argv, model_dir, config.parent


def start(
    argv: list[str], env: dict[str, str], cwd: Path, port: int
) -> tuple[subprocess.Popen[bytes], float]:
    """Start a server; return it and its cold start (spawn to first 200 on /predict) in seconds."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*argv, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/predict"
    while time.perf_counter() - t0 < 180:
        if proc.poll() is not None:
            raise SystemExit(f"server {argv} exited with {proc.returncode}")
        try:
            if (
                httpx.post(
                    url, content=BODY, headers={"content-type": "application/json"}, timeout=5
                ).status_code
                == 200
            ):
                return proc, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit("server did not answer in 180 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wrk(port: int, connections: int, seconds: int, script: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(connections, 2)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/predict",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": total,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


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
        script = tmp / "post.lua"
        script.write_text(
            f"wrk.method = 'POST'\nwrk.body = {json.dumps(BODY)}\n"
            "wrk.headers['Content-Type'] = 'application/json'\n"
        )
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
