"""Benchmark: false drift alarms on samples of the reference's own distribution, by sample size.

50 samples of 100, 500 and 5,000 rows of the example's good data (each its own seed) are compared
with the example's reference (5,000 rows) on its 7 features, as the data gate does:

  * before: a feature drifts when its PSI is over 0.2 (the rule until now);
  * after: PSI over 0.2 *and* beyond sampling noise (resampled p-value under 1% family-wise,
    Bonferroni over the features) -- `checks.drift.drift_test`.

A sample "alarms" when any feature drifts (the gate would stop the pipeline). The `drifted`
variant must still be stopped. Also timed: the drift checks of one sample, before (PSI only, the
ceiling of this work) and after (PSI + 2,000 resampled nulls per feature).

    .venv/bin/python benchmarks/drift.py [--samples 50]

Writes benchmarks/results/drift.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "fraud-detector"))
RESULTS = ROOT / "benchmarks" / "results"

import fraud_data  # noqa: E402
from fraud_model import FEATURES  # noqa: E402

from launchbay.checks import drift  # noqa: E402

THRESHOLD, CONFIDENCE = 0.2, 0.99
CATEGORICAL = {"merchant_category", "card_present"}


def _alarms(reference: Any, sample: Any) -> tuple[bool, bool, float, float]:
    """(old rule alarms, new rule alarms, seconds old, seconds new) for one sample."""
    level = (1 - CONFIDENCE) / len(FEATURES)
    t0 = time.perf_counter()
    old = []
    for f in FEATURES:
        if f in CATEGORICAL:
            old.append(drift.psi_categorical(reference[f], sample[f]))
        else:
            old.append(drift.psi_numeric(reference[f], sample[f]))
    t1 = time.perf_counter()
    new = [drift.drift_test(reference[f], sample[f], categorical=f in CATEGORICAL) for f in FEATURES]
    t2 = time.perf_counter()
    old_alarm = any(v > THRESHOLD for v in old)
    new_alarm = any(t.psi > THRESHOLD and t.p_value < level for t in new)
    return old_alarm, new_alarm, t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    reference = fraud_data.generate(5000, "good", seed=7)
    rows: dict[str, Any] = {}
    for size in (100, 500, 5000):
        results = [_alarms(reference, fraud_data.generate(size, "good", seed=1000 + i)) for i in range(args.samples)]
        drifted = [_alarms(reference, fraud_data.generate(size, "drifted", seed=2000 + i)) for i in range(5)]
        rows[str(size)] = {
            "false_alarms_before": sum(r[0] for r in results),
            "false_alarms_after": sum(r[1] for r in results),
            "drifted_stopped_before": sum(r[0] for r in drifted),
            "drifted_stopped_after": sum(r[1] for r in drifted),
            "drifted_samples": len(drifted),
            "ms_before": round(1000 * sum(r[2] for r in results) / len(results), 2),
            "ms_after": round(1000 * sum(r[3] for r in results) / len(results), 2),
        }
    doc = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "samples": args.samples,
        "reference_rows": len(reference),
        "features": len(FEATURES),
        "threshold": THRESHOLD,
        "confidence": CONFIDENCE,
        "sizes": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "drift.json").write_text(json.dumps(doc, indent=2) + "\n")
    n = args.samples
    lines = [
        "# Drift gate: false alarms by sample size",
        "",
        f"Measured {doc['measured_at']} on {doc['cpus']} CPUs. {n} samples of the example's good data per",
        f"size against its reference ({len(reference)} rows, {len(FEATURES)} features); 5 `drifted` samples per size.",
        f"Before: PSI > {THRESHOLD}. After: PSI > {THRESHOLD} and p < {1 - CONFIDENCE:g}/{len(FEATURES)} "
        "(2,000 resampled nulls at the actual sizes).",
        "",
        "| rows | false alarms before | false alarms after | drifted stopped before | drifted stopped after "
        "| drift checks ms before (ceiling) | ms after |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, r in rows.items():
        lines.append(
            f"| {size} | {r['false_alarms_before']}/{n} | {r['false_alarms_after']}/{n} | "
            f"{r['drifted_stopped_before']}/{r['drifted_samples']} | {r['drifted_stopped_after']}/{r['drifted_samples']} | "
            f"{r['ms_before']} | {r['ms_after']} |"
        )
    lines += ["", "Goal: at most 1 false alarm in 50 at each size, every drifted sample stopped where its size allows."]
    (RESULTS / "drift.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
