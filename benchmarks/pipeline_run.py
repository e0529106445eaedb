"""Benchmark: wall time of each step of `launchbay run`, and the local executor's own overhead.

The executor's overhead is the run's total wall time minus the time of its steps along the
critical path (the steps here form one chain, so: minus the sum of the steps). A step's time is
measured around its process, from spawn to exit, so it includes the interpreter start and the
imports a pod on Argo would pay as well.

Runs, each in a fresh state directory and example project (20,000 transactions, as `make run`):
  1. bootstrap   -- first run, empty registry (includes creating the MLflow database);
  2. challenger  -- second run, scored against the champion as well;
and a no-op chain of four runner steps that isolates the executor's fixed cost per task.

Usage: .venv/bin/python benchmarks/pipeline_run.py [--repeat N]
Writes benchmarks/results/pipeline_run.{json,md}.
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

from projects import write_project  # noqa: E402

from launchbay.checks.signature import generate_keypair  # noqa: E402
from launchbay.config import load_config  # noqa: E402
from launchbay.home import Home  # noqa: E402
from launchbay.pipelines.executor import LocalExecutor, WorkflowRun, dependency_graph  # noqa: E402
from launchbay.pipelines.training import STAGES, build_workflow  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of the whole measurement")
    parser.add_argument("--render-only", action="store_true", help="re-render the Markdown from the JSON")
    args = parser.parse_args()
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
