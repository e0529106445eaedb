"""Benchmark: the edge bundle -- its size, one local prediction's latency and its cold start.

From the signed, packaged example (a real pipeline run), `launchbay package --edge`'s bundle is
built and run in fresh processes from its own directory (nothing of the checkout on the path):

* `edge`      -- the bundle's local call (`EdgeModel.predict({"row": ...})`: the row check, the
                 user's feature function, the ONNX graph, the answer), what a device's code calls;
* `baseline`  -- the same row through the native model (scikit-learn via skops, as the gate scores
                 it), what a device would run without the ONNX variant;
* `ceiling`   -- onnxruntime's `session.run` alone on the row's features already computed: the
                 leanest the same prediction gets on this machine.

Sizes: the bundle (archive and unpacked), the ONNX graph, and the dependencies each needs
installed (onnxruntime + numpy + cryptography vs scikit-learn + scipy + pandas + skops + ...).

Usage: .venv/bin/python benchmarks/edge.py [--calls 5000]
Writes benchmarks/results/edge.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, ROOT, prepare

sys.path.insert(0, str(ROOT / "tests"))
from projects import RISKY_ROW

from launchbay.rollout.measure import dependencies_mb
from launchbay.serving.function_package import LEAN, NATIVE, edge_bundle

TIMED = """
import json, statistics, sys, time
from pathlib import Path
kind, calls, key, model_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[5])
row = json.loads(sys.argv[4])
features = list(json.loads((model_dir / "serving.json").read_text())["features"])
values = [[row[f] for f in features]]
if kind == "edge":
    from launchbay.serving.edge import load
    model = load(model_dir, [key])
    call = lambda: model.predict({"row": row})
elif kind in ("scorer", "ceiling"):
    from launchbay.serving.lean_model import load_variant
    scorer = load_variant(model_dir)
    fed = scorer.feeds(values)
    run = scorer.session.run
    call = (lambda: scorer(values)) if kind == "scorer" else (lambda: run([scorer.output], fed))
else:
    from launchbay.serving.artefact import load
    from launchbay.serving.inputs import model_input
    native = load(model_dir)
    call = lambda: native.output(model_input(native.model, values, features))
for _ in range(200):
    call()
times = []
for _ in range(calls):
    t0 = time.perf_counter()
    call()
    times.append((time.perf_counter() - t0) * 1e6)
times.sort()
print(json.dumps({"p50_us": statistics.median(times), "p99_us": times[int(0.99 * len(times))]}))
"""

COLD = {
    "edge": ["-m", "launchbay.serving.edge", "--trusted-key", "{key}", "--row", "{row}"],
    "baseline": ["-c", "import sys, json; from pathlib import Path; from launchbay.serving.artefact import load; "
                 "from launchbay.serving.inputs import model_input; row = json.loads(sys.argv[1]); d = Path(sys.argv[2]); "
                 "f = list(json.loads((d / 'serving.json').read_text())['features']); n = load(d); "
                 "print(n.output(model_input(n.model, [[row[x] for x in f]], f)))", "{row}", "{model}"],
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count(), "calls": args.calls}
    with tempfile.TemporaryDirectory(prefix="lb-edge-") as t:
        tmp = Path(t)
        env, _, model_dir, _ = prepare(tmp)
        home = Path(env["LAUNCHBAY_HOME"])
        (src,) = home.glob("bentoml/bentos/fraud-detector/v1/src")
        pkg = edge_bundle(src, model_dir, tmp / "dist", "fraud-detector-v1")
        key = str(home / "keys" / "signing-key.pub")
        row = json.dumps(RISKY_ROW)
        sizes = {k: v for k, v in pkg.sizes_mb.items() if k != "dependencies installed"}  # counted below
        results["sizes_mb"] = {
            **sizes,
            "edge dependencies (onnxruntime, numpy, cryptography)": dependencies_mb(list(LEAN)),
            "native dependencies (scikit-learn, pandas, skops, ...)": dependencies_mb(list(NATIVE)),
        }
        # The baseline needs launchbay's artefact loader, which the bundle does not carry: it runs
        # from the Bento's code instead (the same model directory); the edge runs get nothing else.
        clean = {"PATH": "/usr/bin:/bin"}
        where = {"baseline": src}
        rounds: dict[str, list[dict[str, float]]] = {k: [] for k in ("edge", "scorer", "ceiling", "baseline")}
        for _ in range(3):  # in turn: this machine's speed drifts by tens of percent over a minute
            for kind in rounds:
                res = subprocess.run(
                    [sys.executable, "-c", TIMED, kind, str(args.calls), key, row, str(pkg.directory / "model")],
                    cwd=where.get(kind, pkg.directory), env=clean, capture_output=True, text=True, timeout=900,
                    check=True,
                )  # fmt: skip
                rounds[kind].append(json.loads(res.stdout))
                print(kind, rounds[kind][-1], flush=True)
        results["latency"] = {
            k: {m: round(sorted(x[m] for x in v)[1], 1) for m in ("p50_us", "p99_us")} for k, v in rounds.items()
        }
        cold = {}
        for kind, argv in COLD.items():
            filled = [a.format(key=key, row=row, model=pkg.directory / "model") for a in argv]
            samples = []
            for _ in range(5):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, *filled], cwd=where.get(kind, pkg.directory), env=clean,
                               capture_output=True, check=True, timeout=300)  # fmt: skip
                samples.append(round(time.perf_counter() - t0, 3))
            cold[kind] = sorted(samples)[len(samples) // 2]
        results["cold_start_s"] = cold
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "edge.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "edge.md").write_text(render(results))
    print(render(results))


def render(r: dict[str, Any]) -> str:
    lat, sizes, cold = r["latency"], r["sizes_mb"], r["cold_start_s"]
    lines = [
        "# Edge bundle: size, one local prediction, cold start",
        "",
        f"Measured {r['when']} on {r['cpus']} CPUs; the example model's bundle from a real pipeline run, each",
        f"figure in a fresh process started in the bundle's directory; {r['calls']} one-row calls after 200 warm-up.",
        "",
        "| one prediction (1 row) | p50 us | p99 us |",
        "|---|---|---|",
        f"| edge: the bundle's local call (row check, feature function, ONNX graph, answer) | **{lat['edge']['p50_us']:.1f}** | {lat['edge']['p99_us']:.1f} |",
        f"| the variant alone (the example's feature function + the ONNX graph) | {lat['scorer']['p50_us']:.1f} | {lat['scorer']['p99_us']:.1f} |",
        f"| baseline: the native model (scikit-learn via skops) | {lat['baseline']['p50_us']:.1f} | {lat['baseline']['p99_us']:.1f} |",
        f"| ceiling: onnxruntime `session.run` on precomputed features | {lat['ceiling']['p50_us']:.1f} | {lat['ceiling']['p99_us']:.1f} |",
        "",
        f"Edge vs baseline: {lat['edge']['p50_us'] / lat['baseline']['p50_us']:.2f}x the time per call; vs ceiling: "
        f"{lat['edge']['p50_us'] / lat['ceiling']['p50_us']:.1f}x: the example's own feature function (numpy) is most "
        f"of the variant's time, and launchbay's row check and answer add "
        f"{lat['edge']['p50_us'] - lat['scorer']['p50_us']:.0f} us. Medians of 3 rounds run in turn.",
        "",
        "| size | MB |",
        "|---|---|",
        *[f"| {k} | {v:g} |" for k, v in sizes.items()],
        "",
        f"Cold start, process start to the printed answer (median of 5, signature verified first): edge "
        f"{cold['edge']:.2f} s, native model {cold['baseline']:.2f} s.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
