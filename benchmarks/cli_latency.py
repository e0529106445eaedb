"""Benchmark: how long the read verbs take to answer, from a second process, as a user runs them.

A project made by `launchbay init` (generated data, 6 features) is trained twice (`run
--no-rollout`: a champion and a challenger) and given releases in its ledger; then each command is
run N times in a fresh process and its wall time recorded:

  * `launchbay status` -- champion and challenger read straight from the embedded SQLite store;
  * baseline: the same answer through MLflow's client (`MlflowRegistry.state(fast=False)`, what
    `status` did before), in a fresh process importing only what that needs;
  * ceiling: a bare `python -c` reading the same rows with sqlite3 (interpreter start + query);
  * `launchbay history`, `launchbay --version` (the CLI's fixed cost).

    .venv/bin/python benchmarks/cli_latency.py [--runs 10]

Writes benchmarks/results/cli_latency.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

BASELINE = (
    "import sys; from launchbay.config import load_config; from launchbay.home import Home;"
    "from launchbay.registry import MlflowRegistry;"
    "cfg = load_config(sys.argv[1]);"
    "MlflowRegistry(cfg, Home.resolve(cfg.source)).state(cfg.model.name, fast=False)"
)
BASE_ROW = "baseline: the same state through MLflow's client"
CEILING = (
    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
    "c.execute('select alias, version from registered_model_aliases').fetchall();"
    "c.execute('select key, value from latest_metrics').fetchall()"
)


def _project(root: Path, env: dict[str, str]) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(2000, 6)), columns=[f"f{i}" for i in range(6)])
    frame["label"] = (frame["f0"] + frame["f1"] > 0).astype(int)
    (root / "data").mkdir(parents=True)
    frame.to_csv(root / "data" / "train.csv", index=False)
    lb = [sys.executable, "-m", "launchbay"]
    for args in (
        ["init", "--data", "data/train.csv", "--target", "label"],
        ["keys", "init"],
        ["run", "--no-rollout"],
        ["run", "--no-rollout"],
    ):
        subprocess.run([*lb, *args], cwd=root, env=env, check=True, capture_output=True, timeout=600)
    return root / "launchbay.yaml"


def _timed(argv: list[str], cwd: Path, env: dict[str, str], runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - t0)
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in {"LAUNCHBAY_HOME", "MLFLOW_TRACKING_URI"}}
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    env["LAUNCHBAY_STEP_SERVER_IDLE"] = "0"  # its two training runs leave no steps' server behind
    with tempfile.TemporaryDirectory(prefix="launchbay-bench-cli-") as tmp:
        config = _project(Path(tmp) / "bench-model", env)
        repo = config.parent
        from launchbay.home import Home
        from launchbay.rollout.engine.plan import Plan
        from launchbay.rollout.ledger.store import SqlLedger

        # A release in the ledger, so status and history read one (the rollout itself is not timed).
        SqlLedger.for_home(Home(repo / ".launchbay")).create(
            model="bench-model", version="2", author="dana", stable_version="1", plan=Plan()
        )
        lb = [sys.executable, "-m", "launchbay"]
        db = str(repo / ".launchbay" / "mlflow.db")
        rows = {
            "launchbay status": _timed([*lb, "status"], repo, env, args.runs),
            BASE_ROW: _timed(
                [sys.executable, "-c", BASELINE, str(config)], repo, env, args.runs
            ),
            "ceiling: python + sqlite3 query": _timed([sys.executable, "-c", CEILING, db], repo, env, args.runs),
            "launchbay history bench-model": _timed([*lb, "history", "bench-model"], repo, env, args.runs),
            "launchbay --version": _timed([*lb, "--version"], repo, env, args.runs),
        }
    status = rows["launchbay status"]["median_s"]
    doc = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "rows": rows,
        "status_vs_baseline": round(status / rows[BASE_ROW]["median_s"], 3),
        "status_vs_ceiling": round(status / rows["ceiling: python + sqlite3 query"]["median_s"], 2),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_latency.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# Read verbs: wall time of a fresh `launchbay` process",
        "",
        f"Measured {doc['measured_at']} on {doc['cpus']} CPUs, {args.runs} runs each (median, min, max).",
        "",
        "| command | median s | min s | max s |",
        "|---|---|---|---|",
        *[f"| {k} | {v['median_s']} | {v['min_s']} | {v['max_s']} |" for k, v in rows.items()],
        "",
        f"`status` takes {doc['status_vs_baseline']:.2f}x the baseline's time (the same answer through "
        f"MLflow) and {doc['status_vs_ceiling']:.1f}x the ceiling's (a bare interpreter reading the rows); "
        "goal: <= 0.3 s for status, history and --version.",
        "",
        "Previous release, same machine kind (issue 34): status 1.2-1.5 s, history 0.8 s, --version 0.4 s.",
        "Where the rest of status goes (-X importtime): the config's pydantic models ~0.2 s (0.05 s of it their",
        "attribute docstrings, kept for `launchbay schema`), SQLAlchemy for the ledger ~0.17 s, Typer/Click/Rich",
        "~0.07 s, the interpreter ~0.03 s.",
    ]
    (RESULTS / "cli_latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
