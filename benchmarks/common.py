"""Helpers shared by the benchmarks: a trained, signed, packaged example; servers; wrk."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples" / "fraud-detector"))  # the example's model and data
RESULTS = ROOT / "benchmarks" / "results"

from projects import RISKY_ROW  # noqa: E402

from launchbay.procs import free_port  # noqa: E402,F401 (the benchmarks' free ports)

BODY = json.dumps({"rows": [RISKY_ROW]})


def post_script(path: Path) -> Path:
    """A wrk Lua script posting BODY as JSON."""
    path.write_text(
        f"wrk.method = 'POST'\nwrk.body = {json.dumps(BODY)}\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
    )
    return path


def paced_script(path: Path, delay_ms: int) -> Path:
    """Like `post_script`, but each connection waits `delay_ms` between requests (a fixed load)."""
    post_script(path)
    with path.open("a") as f:
        f.write(f"function delay()\n  return {delay_ms}\nend\n")
    return path


def prepare(tmp: Path) -> tuple[dict[str, str], list[str], Path, Path]:
    """Train, sign and package the example; return (env, launchbay serve argv, model dir, project dir)."""
    from projects import write_project

    from launchbay.checks.signature import generate_keypair

    home = tmp / "home"
    generate_keypair(home / "keys")
    config = write_project(tmp / "project", rows=20_000)
    env = {**os.environ, "LAUNCHBAY_HOME": str(home), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    res = subprocess.run(
        [sys.executable, "-m", "launchbay", "run", "--no-rollout"],
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
