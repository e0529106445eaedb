"""First-model benchmark: a new user's repository with `launchbay init`'s defaults, at 1, 5 and 30 req/s.

For each dataset that ships with scikit-learn -- breast cancer (binary), wine (multiclass, integer
labels), diabetes (regression) -- and each rate: `launchbay init --rps RATE` with nothing tuned,
version 1 on the first 60% of the rows, then three candidates through `launchbay run --traffic RATE`:

  (a) a good retrain on all the rows          -> must reach approval (then approved)
  (b) the same model on shuffled labels       -> must be stopped (at the model gate)
  (c) serving skew: the service gets every feature x10 while training and every offline check
      did not (offline metrics as good as (a)) -> must be rolled back in shadow

Goals (issue 29): every good retrain reaches approval; every bad candidate is stopped, (c) in shadow;
no step passes its progress deadline without saying so. Reported: the verdict, where it was reached
and the time from the release's creation to it, per dataset and rate.

    python benchmarks/first_model.py [--rates 30,5,1] [--datasets cancer,wine,diabetes]
    python benchmarks/first_model.py --combos cancer:30,wine:30,diabetes:30,cancer:5,cancer:1

Writes benchmarks/results/first_model.{json,md}. Every process it starts is stopped (`launchbay down`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))

import people  # noqa: E402
import yaml  # noqa: E402

from launchbay import procs  # noqa: E402
from launchbay.rollout.ledger.store import SqlLedger  # noqa: E402

SKEW = '''
import sys

{model_import}
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler


def units(features):
    """The features as the model learned them -- except in the service, where they arrive x10."""
    return features * 10.0 if "serving" in sys.argv[0] else features


def train(features, target, params):
    steps = [("units", FunctionTransformer(units)), ("scale", StandardScaler()), ("model", {estimator})]
    return Pipeline(steps).fit(features, target)
'''
SHUFFLED = '''
import numpy as np

from model_good import train as good


def train(features, target, params):
    """The good model on labels shuffled: it learns nothing."""
    return good(features, target.sample(frac=1.0, random_state=0).to_numpy(), params)
'''


def dataset(name: str) -> tuple[Any, str]:
    """(frame with a `target` column, task)."""
    from sklearn import datasets

    if name == "cancer":
        frame, task = datasets.load_breast_cancer(as_frame=True).frame, "binary"
    elif name == "wine":
        frame, task = datasets.load_wine(as_frame=True).frame, "multiclass"
    else:
        frame, task = datasets.load_diabetes(as_frame=True).frame, "regression"
    frame.columns = [str(c).replace(" ", "_").replace("/", "_") for c in frame.columns]
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True), task


def one(name: str, rate: float, work: Path) -> dict[str, Any]:
    frame, task = dataset(name)
    repo, home = work / f"{name}-{rate:g}", work / f"home-{name}-{rate:g}"
    (repo / "data").mkdir(parents=True)
    env = {**os.environ, "LAUNCHBAY_HOME": str(home), "LAUNCHBAY_USER": "dora",
           "XDG_CONFIG_HOME": str(people.CONFIG_HOME), "COLUMNS": "200"}  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)

    def lb(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "launchbay", *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    frame.iloc[: int(len(frame) * 0.6)].to_csv(repo / "data" / "train.csv", index=False)
    made = lb("init", "--data", "data/train.csv", "--target", "target", "--rps", f"{rate:g}")
    assert made.returncode == 0, made.stdout + made.stderr
    config = repo / "launchbay.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["rollout"]["approval"] = {"required": True, "approvers": people.approvers("alice")}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copy(repo / "model.py", repo / "model_good.py")
    doc["model"]["code"] = ["model.py", "model_good.py"]
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert lb("keys", "init").returncode == 0
    ledger = SqlLedger(f"sqlite:///{home / 'ledger.db'}")
    out: dict[str, Any] = {"dataset": name, "task": task, "rows": len(frame), "rate": rate}
    try:
        first = lb("run")
        assert first.returncode == 0, first.stdout + first.stderr
        frame.to_csv(repo / "data" / "train.csv", index=False)
        estimator = "Ridge()" if task == "regression" else "LogisticRegression(max_iter=5000)"
        model_import = (
            "from sklearn.linear_model import Ridge" if task == "regression"
            else "from sklearn.linear_model import LogisticRegression"
        )  # fmt: skip
        candidates = {
            "a_good_retrain": (repo / "model_good.py").read_text(),
            "b_shuffled_labels": SHUFFLED,
            "c_serving_skew": SKEW.format(model_import=model_import, estimator=estimator),
        }
        for kind, code in candidates.items():
            (repo / "model.py").write_text(code)
            before = {r.id for r in ledger.releases(doc["model"]["name"])}
            started = time.monotonic()
            res = lb("run", "--traffic", f"{rate:g}")
            took = time.monotonic() - started
            mine = [r for r in ledger.releases(doc["model"]["name"]) if r.id not in before]
            entry: dict[str, Any] = {"exit": res.returncode, "wall_s": round(took, 1)}
            if not mine:
                said = [line.strip(" │") for line in (res.stdout + res.stderr).splitlines()]
                gate = [line for line in said if "gate FAIL" in line]
                failed = [line for line in said if line.startswith("- FAIL")]
                entry |= {"verdict": "stopped before release",
                          "said": "; ".join(gate[:1] + failed[:2]) or (said[-1] if said else "")}  # fmt: skip
            else:
                r = mine[0]
                events = ledger.history(release_id=r.id)
                ended = events[-1]
                entry |= {
                    "verdict": r.phase.value,
                    "phases": [e.phase_to for e in events if e.phase_to and e.phase_to != e.phase_from],
                    "release_to_verdict_s": round(ended.at - r.created_at, 1),
                    "stalled_said": sum(1 for e in events if e.action == "progress-deadline"),
                    "why": ended.reason[:300],
                }
                if r.phase.value == "awaiting-approval":
                    ok = lb("approve", str(r.id), "--as", "alice")
                    entry["approved"] = ok.returncode == 0
            out[kind] = entry
            print(f"{name} at {rate:g}/s {kind}: {entry}", flush=True)
    finally:
        lb("down", timeout=300)
        for owner in (f"{home.resolve()}#{doc['model']['name']}", f"{home.resolve()}#prometheus"):
            procs.sweep(owner)
    return out


def goals(row: dict[str, Any]) -> dict[str, bool]:
    a, b, c = row["a_good_retrain"], row["b_shuffled_labels"], row["c_serving_skew"]
    return {
        "good reaches approval": a.get("verdict") == "awaiting-approval",
        "shuffled stopped": b.get("verdict") in ("stopped before release", "rolled-back", "failed"),
        "skew rolled back in shadow": c.get("verdict") == "rolled-back" and "canary" not in c.get("phases", []),
        "no silent stall": all(x.get("stalled_said", 0) == 0 for x in (a, b, c)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="30,5,1")
    parser.add_argument("--datasets", default="cancer,wine,diabetes")
    parser.add_argument("--combos", help="dataset:rate pairs instead of every rate x dataset")
    args = parser.parse_args()
    if args.combos:
        combos = [(c.split(":")[0], float(c.split(":")[1])) for c in args.combos.split(",")]
    else:
        combos = [(n, float(r)) for r in args.rates.split(",") for n in args.datasets.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lb-first-model-") as tmp:
        for name, rate in combos:
            row = one(name, rate, Path(tmp))
            row["goals"] = goals(row)
            rows.append(row)
            write(rows)  # after each: a long run interrupted keeps what it measured


def write(rows: list[dict[str, Any]]) -> None:
    """benchmarks/results/first_model.{json,md} from the rows measured so far."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"when": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{os.cpu_count()} cores", "rows": rows}
    (RESULTS / "first_model.json").write_text(json.dumps(doc, indent=2))
    lines = [
        "# First model with init's defaults (benchmarks/first_model.py)",
        "",
        f"{doc['when']}, {doc['machine']}. Time: release created -> verdict (s).",
        "",
        "| dataset | req/s | (a) good retrain | (b) shuffled labels | (c) serving skew | goals met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = []
        for kind in ("a_good_retrain", "b_shuffled_labels", "c_serving_skew"):
            e = row[kind]
            t = e.get("release_to_verdict_s")
            cells.append(f"{e.get('verdict')}" + (f" in {t:g} s" if t is not None else ""))
        met = all(row["goals"].values())
        missed = ", ".join(k for k, v in row["goals"].items() if not v)
        lines.append(
            f"| {row['dataset']} ({row['task']}, {row['rows']} rows) | {row['rate']:g} | "
            + " | ".join(cells) + f" | {'all' if met else 'missed: ' + missed} |"
        )
    (RESULTS / "first_model.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
