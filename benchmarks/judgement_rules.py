"""Benchmark (simulation): the analysis' decision rules on simulated traffic -- before and after.

This is not issue 13's real-server benchmark (`judgement.py`, not written yet): it replays the
*decision rules* of `rollout/engine/analysis.py` on simulated request streams, many times, to measure
what the rules alone do near their limits. Each simulated rollout is judged every second over a
sliding window, as the controller does:

  * before: a rate over its limit in the window fails at once (the point estimate);
  * after: it fails only when the anytime-valid lower bound (`rollout.stats`, 95%) clears the limit.

Scenarios (defaults of the example: disagreement limit 5%, error-rate limit 1%):
  * false rollbacks: a candidate as good as stable with a natural disagreement of half the limit
    (2.5%), 7.5 compared rows/s, 10 s windows (50-100 rows each), 30 s of shadow;
  * detection: 10% disagreement at 50 rows/s; 20% errors at 12.5 req/s (a 25% canary of 50 req/s):
    seconds from the fault's start to the rollback.

    .venv/bin/python benchmarks/judgement_rules.py [--rollouts 1000]

Writes benchmarks/results/judgement_rules.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from launchbay.rollout.engine.stats import against_limit

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def _first_fail(events: np.ndarray, per_second: np.ndarray, limit: float, window: int, rule: str,
                min_samples: int) -> int | None:  # fmt: skip
    """The second at which a rule first fails (None: never), over a sliding window."""
    for t in range(1, len(events) + 1):
        lo = max(0, t - window)
        n, k = int(per_second[lo:t].sum()), int(events[lo:t].sum())
        if n < min_samples:
            continue
        if rule == "before" and k / n > limit:
            return t
        if rule == "after" and against_limit(k, n, limit, 0.95).verdict == "over":
            return t
    return None


def _simulate(rate: float, p: float, seconds: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    per_second = rng.poisson(rate, seconds)
    return rng.binomial(per_second, p), per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rollouts", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.rollouts
    rows: dict[str, dict[str, float | str]] = {}

    # False rollbacks: half the limit, 50-100 rows per window, 30 s of shadow.
    # The worst good candidate is one exactly at the limit: the bound's level is about that one.
    for rule, p in (("before", 0.025), ("after", 0.025), ("after", 0.05)):
        fails = sum(
            _first_fail(*_simulate(7.5, p, 30, rng), limit=0.05, window=10, rule=rule, min_samples=30) is not None
            for _ in range(n)
        )
        rows[f"good candidate, disagreement {p:.1%} vs limit 5% ({rule})"] = {
            "rolled_back": f"{fails}/{n}",
            "per_20": round(20 * fails / n, 2),
        }

    # Detection: time to the rollback.
    for name, rate, p, limit in (
        ("10% disagreement vs limit 5%, 50 rows/s", 50.0, 0.10, 0.05),
        ("20% errors vs limit 1%, 12.5 req/s", 12.5, 0.20, 0.01),
    ):
        for rule in ("before", "after"):
            times = [
                _first_fail(*_simulate(rate, p, 60, rng), limit=limit, window=10, rule=rule, min_samples=15)
                for _ in range(min(n, 300))
            ]
            found = [t for t in times if t is not None]
            rows[f"{name} ({rule})"] = {
                "detected": f"{len(found)}/{len(times)}",
                "median_s": statistics.median(found) if found else "-",
                "p90_s": round(float(np.percentile(found, 90)), 1) if found else "-",
                "max_s": max(found) if found else "-",
            }

    doc = {"measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cpus": os.cpu_count(),
           "rollouts": n, "confidence": 0.95, "rows": rows}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "judgement_rules.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# Decision rules on simulated traffic (not the real-server benchmark)",
        "",
        f"Measured {doc['measured_at']}; {n} simulated rollouts per false-rollback row, 300 per detection row;",
        "judged every second over a 10 s sliding window. Before: point estimate over the limit.",
        "After: anytime-valid 95% lower bound over the limit (`rollout.stats`: a one-sided mixture of",
        "likelihood ratios for 1.5x-10x the limit).",
        "",
        "| scenario | result |",
        "|---|---|",
        *[f"| {k} | {', '.join(f'{a}: {b}' for a, b in v.items())} |" for k, v in rows.items()],
        "",
        "Goal (issue 13): at most 1 of 20 good candidates rolled back; faults caught within 5 s at 50 req/s.",
        "A sliding window is not the growing sample the bound is proven for; these figures are what the",
        "rule does with one.",
    ]
    (RESULTS / "judgement_rules.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
