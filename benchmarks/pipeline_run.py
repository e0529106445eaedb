"""Benchmark: wall time of each step of `launchbay run`, and the local executor's own overhead.

The executor's overhead is the run's total wall time minus the time of its steps along the
critical path (the steps here form one chain, so: minus the sum of the steps). A step's time is
measured around its process, from spawn to exit, so it includes the interpreter start and the
imports a pod on Argo would pay as well.

Runs, each in a fresh state directory and example project (20,000 transactions, as `make run`):
  1. bootstrap   -- first run, empty registry (includes creating the MLflow database);
  2. challenger  -- second run, scored against the champion as well;
and a no-op chain of four runner steps that isolates the executor's fixed cost per task.

And, alternating in one run, each round with a fresh project and state directory:
  * `launchbay run --no-rollout` as a user runs it (steps forked warm from the forkserver);
  * baseline: the same with LAUNCHBAY_WARM_STEPS=0 (a new interpreter per step, as before);
  * ceiling: the same six step functions called one after another in a single Python process.

Usage: .venv/bin/python benchmarks/pipeline_run.py [--repeat N] [--only versus]
Writes benchmarks/results/pipeline_run.{json,md} (`--only versus`: pipeline_warm.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples" / "fraud-detector"))  # the example's model and data

import fraud_data  # noqa: E402
from projects import write_project  # noqa: E402

from launchbay.checks.signature import generate_keypair  # noqa: E402
from launchbay.config import load_config  # noqa: E402
from launchbay.home import Home  # noqa: E402
from launchbay.pipelines.executor import LocalExecutor, WorkflowRun, dependency_graph  # noqa: E402
from launchbay.pipelines.training import STAGES, build_workflow  # noqa: E402
from launchbay.pipelines.warm import IDLE  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def measure(run: WorkflowRun, executor: LocalExecutor, workflow: Any) -> dict[str, Any]:
    tasks, _, _ = executor.plan(workflow)
    critical = run.critical_path_seconds(dependency_graph(tasks))
    return {
        "succeeded": run.succeeded,
        "total_s": round(run.seconds, 3),
        "steps_s": {n: round(t.seconds, 3) for n, t in run.tasks.items()},
        "critical_path_s": round(critical, 3),
        "overhead_s": round(run.seconds - critical, 3),
        "overhead_pct": round(100 * (run.seconds - critical) / run.seconds, 2),
    }


def pipeline_runs(tmp: Path) -> list[dict[str, Any]]:
    config = write_project(tmp / "project", rows=20_000)
    home = Home(tmp / "home").ensure()
    generate_keypair(home.root / "keys")  # the pipeline signs what it registers
    os.environ["LAUNCHBAY_HOME"] = str(home.root)
    cfg = load_config(config)
    out = []
    for label in ("bootstrap", "challenger"):
        wf = build_workflow(cfg, config=str(config), data=cfg.resolve_path(cfg.data.path))
        # As `launchbay run` does: the project's directory (its model module) is importable.
        ex = LocalExecutor(
            home.workflows, env={"LAUNCHBAY_HOME": str(home.root), "PYTHONPATH": str(config.parent)}
        )
        run = ex.run(wf)
        out.append({"run": label, **measure(run, ex, wf)})
        print(f"{label}: {out[-1]}", flush=True)
    return out


def noop_chain(tmp: Path) -> dict[str, Any]:
    """Four chained runner steps that do nothing: the executor's fixed cost per task."""
    from hera.workflows import DAG, Workflow

    sys.path.insert(0, str(ROOT / "tests" / "unit" / "pipelines"))
    import sample_steps as s

    with Workflow(generate_name="noop-", entrypoint="main") as w, DAG(name="main"):
        prev = None
        for i in range(4):
            t = s.emit(name=f"noop-{i}", arguments={"value": str(i)})
            if prev is not None:
                prev >> t
            prev = t
    ex = LocalExecutor(tmp / "noop", env={"PYTHONPATH": str(ROOT / "tests" / "unit" / "pipelines")})
    return measure(ex.run(w), ex, w)


ONE_PROCESS = """
import sys
from launchbay.pipelines import steps
config, data = sys.argv[1], sys.argv[2]
run_id, digest = steps.validate_data.__wrapped__(config=config, data=data)
uri = steps.train.__wrapped__(config=config, data=data, run_id=run_id)
steps.evaluate.__wrapped__(config=config, data=data, run_id=run_id, model_uri=uri)
version, _ = steps.register.__wrapped__(config=config, run_id=run_id, model_uri=uri, data_digest=digest)
steps.sign_model.__wrapped__(config=config, data=data, run_id=run_id, model_version=version, data_digest=digest)
steps.package.__wrapped__(config=config, model_version=version)
"""


SMALL = {
    "data.min_rows": 100,
    "gates.min_auc": 0.5,
    "gates.min_precision": 0.0,
    "gates.min_recall": 0.0,
    "gates.max_regression_vs_champion": 1.0,
}
"""A 500-row data set's gates: 125 held-out rows with ~5 frauds decide nothing about quality; the
benchmark times the run, not the model."""


def _fresh(tmp: Path, name: str, rows: int = 20_000) -> tuple[Path, dict[str, str]]:
    config = write_project(tmp / name / "project", rows=rows, overrides=SMALL if rows < 1000 else None)
    home = Home(tmp / name / "home").ensure()
    generate_keypair(home.root / "keys")
    env = {**os.environ, "LAUNCHBAY_HOME": str(home.root), "PYTHONPATH": str(config.parent)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env[IDLE] = "600"  # the steps' server outlives the first run, as a user's does
    return config, env


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    import subprocess

    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return round(took, 2)


def _down(env: dict[str, str]) -> None:
    from launchbay.pipelines import warm

    warm.stop_servers(Path(env["LAUNCHBAY_HOME"]) / "steps")


COLUMNS = {
    "first": "first run (starts the steps' server) s",
    "second": "second run (server warm; data gate reused) s",
    "second_new_data": "second run, new data (gate computed) s",
    "small": "500-row data set, warm s",
    "cold": "baseline: cold, a new interpreter per step s",
    "one_process": "ceiling: one process s",
}


def versus_one_process(rounds: int) -> dict[str, Any]:
    """`launchbay run --no-rollout` first and again (the steps' server kept), on new data, on 500
    rows, cold (a new interpreter per step), and the steps in one process."""
    rows: list[dict[str, float]] = []
    lb = [sys.executable, "-m", "launchbay", "run", "--no-rollout"]
    for i in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            row: dict[str, float] = {}
            config, env = _fresh(Path(tmp), "warm")
            try:
                row["first"] = _timed(lb, config.parent, env)
                row["second"] = _timed(lb, config.parent, env)
                other = config.parent / "data" / "next.parquet"
                fraud_data.write(fraud_data.generate(20_000, "good", seed=100 + i), other)
                row["second_new_data"] = _timed([*lb, "--data", str(other)], config.parent, env)
            finally:
                _down(env)
            config, env = _fresh(Path(tmp), "small", rows=500)
            try:
                _timed(lb, config.parent, env)  # its server started
                small = config.parent / "data" / "small.parquet"
                fraud_data.write(fraud_data.generate(500, "good", seed=200 + i), small)
                row["small"] = _timed([*lb, "--data", str(small)], config.parent, env)
            finally:
                _down(env)
            config, env = _fresh(Path(tmp), "cold")
            row["cold"] = _timed(lb, config.parent, {**env, "LAUNCHBAY_WARM_STEPS": "0"})
            config, env = _fresh(Path(tmp), "one")
            cfg = load_config(config)
            data = cfg.resolve_path(cfg.data.path)
            row["one_process"] = _timed(
                [sys.executable, "-c", ONE_PROCESS, str(config), data], config.parent, env
            )
            rows.append(row)
            print(f"round {i + 1}: {row}", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in COLUMNS}
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(),
        "rounds": rows,
        "median_s": med,
        "previous_release_s": PREVIOUS,
        "second_vs_one_process": round(med["second"] / med["one_process"], 2),
        "first_vs_one_process": round(med["first"] / med["one_process"], 2),
        "cold_vs_one_process": round(med["cold"] / med["one_process"], 2),
    }


PREVIOUS = {"run --no-rollout (warm, forkserver per run)": [28.9, 29.6], "one process": [22.2, 20.8]}
"""The previous release on this machine kind (issue 34's figures: the forkserver died with each run)."""


def render_versus(v: dict[str, Any]) -> str:
    med = v["median_s"]
    lines = [
        "# `launchbay run --no-rollout`: the steps' server kept between runs, against cold steps and one process",
        "",
        f"Measured {v['when']} on {v['cpus']} CPUs; each round a fresh example project (20,000 rows unless "
        "said) and state directory per variant, run one after another.",
        "",
        "| round | " + " | ".join(COLUMNS.values()) + " |",
        "|---|" + "---|" * len(COLUMNS),
        *[f"| {i} | " + " | ".join(str(r[k]) for k in COLUMNS) + " |" for i, r in enumerate(v["rounds"], 1)],
        "",
        "Medians: " + ", ".join(f"{k} {med[k]:.1f} s" for k in COLUMNS) + ".",
        "",
        f"- Second run {med['second']:.1f} s (goal <= 8 s), first {med['first']:.1f} s (goal <= 15 s), "
        f"500 rows warm {med['small']:.1f} s (goal <= 5 s).",
        f"- Against the ceiling (the six steps in one process, {med['one_process']:.1f} s): second run "
        f"{v['second_vs_one_process']}x, first {v['first_vs_one_process']}x, cold {v['cold_vs_one_process']}x.",
        "- Previous release, same machine kind: "
        + "; ".join(f"{k} {', '.join(map(str, x))} s" for k, x in v["previous_release_s"].items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of the whole measurement")
    parser.add_argument("--render-only", action="store_true", help="re-render the Markdown from the JSON")
    parser.add_argument("--only", choices=["versus"], help="only the warm/cold/one-process comparison")
    args = parser.parse_args()
    os.environ.setdefault(IDLE, "0")  # servers this script starts end soon after its last step
    if args.only == "versus":
        v = versus_one_process(max(args.repeat, 1))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "pipeline_warm.json").write_text(json.dumps(v, indent=2) + "\n")
        (RESULTS / "pipeline_warm.md").write_text(render_versus(v))
        print(render_versus(v))
        return
    if args.render_only:
        result = json.loads((RESULTS / "pipeline_run.json").read_text())
        (RESULTS / "pipeline_run.md").write_text(render(result))
        return
    rounds = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            rounds.append({"pipeline": pipeline_runs(Path(tmp)), "noop_chain": noop_chain(Path(tmp))})
            print(f"round {i + 1}: noop {rounds[-1]['noop_chain']}", flush=True)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "rounds": rounds,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipeline_run.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "pipeline_run.md").write_text(render(result))
    print(render(result))


def render(result: dict[str, Any]) -> str:
    lines = [
        "# `launchbay run`: step times and executor overhead",
        "",
        f"Measured {result['when']} on {result['machine']['cpus']} CPUs, Python {result['machine']['python']}.",
        "Overhead = total wall time − steps on the critical path (spawn to exit of each step's process).",
        "",
        "| round | run | " + " | ".join(STAGES) + " | total s | overhead s | overhead % |",
        "|---|---|" + "---|" * len(STAGES) + "---|---|---|",
    ]
    for i, rnd in enumerate(result["rounds"], 1):
        for r in rnd["pipeline"]:
            steps = " | ".join(f"{r['steps_s'].get(s, 0):.2f}" for s in STAGES)
            lines.append(
                f"| {i} | {r['run']} | {steps} | {r['total_s']:.2f} | {r['overhead_s']:.3f} | {r['overhead_pct']:.2f} |"
            )
    overheads = [r["overhead_pct"] for rnd in result["rounds"] for r in rnd["pipeline"]]
    noop = [rnd["noop_chain"] for rnd in result["rounds"]]
    lines += [
        "",
        f"Executor overhead on the pipeline: median {statistics.median(overheads):.2f}% of the total "
        f"(max {max(overheads):.2f}%; target < 10%).",
        "",
        "No-op chain of four runner steps (the fixed cost: a Python process with Hera's runner per step):",
        "",
        "| round | total s | steps s | overhead s | overhead per task ms |",
        "|---|---|---|---|---|",
    ]
    for i, n in enumerate(noop, 1):
        per_task = 1000 * n["overhead_s"] / 4
        lines.append(
            f"| {i} | {n['total_s']:.3f} | {n['critical_path_s']:.3f} | {n['overhead_s']:.3f} | {per_task:.1f} |"
        )
    step_start = statistics.median(s for n in noop for s in n["steps_s"].values())
    totals = [r["total_s"] for rnd in result["rounds"] for r in rnd["pipeline"]]
    lines += [
        "",
        f"A step that does nothing still takes {step_start:.2f} s: starting Python and importing Hera's runner.",
        f"{len(STAGES)} such starts are {100 * len(STAGES) * step_start / statistics.median(totals):.0f}% "
        "of a pipeline run; they are",
        "counted as step time, as a pod's start is on Argo, and they are the price of running each step",
        "in its own process exactly as Argo will (no shared memory between steps).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
