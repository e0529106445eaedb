"""Benchmark: live drift detection -- delay by shift size and rate, false alarms over 1,000 hours.

Streams are simulated in time (one batch per minute, as `monitor.every` defaults): five numeric
features, a reference of 20,000 training rows, and live rows drawn from the reference's own
distribution until a change point, then one feature's mean moves by a shift (in standard
deviations: small 0.2, medium 0.5, large 1.0). Three monitors see the same streams:

* **launchbay**: `launchbay.checks.live_drift.Detector` with the product's defaults (bets every
  10 min, 24 h kept, expected time to a false alarm >= 365 days, shared by all features);
* **the baseline**, the fixed-threshold practice of Evidently and NannyML: each hour, each feature,
  a PSI over 10 reference-quantile bins (alarm at PSI > 0.1, Evidently's default) and a two-sample
  KS test (alarm at p < 0.05, Evidently's default for small samples);
* **the ceiling**: a CUSUM that *knows* the pre- and post-change distributions of the feature that
  moves (Lorden's optimal detector), at the same expected time to a false alarm.

Delay is minutes from the change to the alarm (median of seeds; '-' when none within 48 h).
False alarms: alarms on a stationary stream of 1,000 hours at 10 requests/s (the detector restarts
after each). Usage: .venv/bin/python benchmarks/monitoring.py [--hours 1000] [--seeds 5]
-> benchmarks/results/monitoring.{json,md} (~20 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS

from launchbay.checks.live_drift import Bins, Detector, binned, threshold_for

FEATURES = 5
REFERENCE_ROWS = 20_000
BATCH_S = 60
BET_EVERY = 10  # batches
YEAR_S = 365 * 86400
SHIFTS = {"small": 0.2, "medium": 0.5, "large": 1.0}
RATES = (1, 10, 100)
WARMUP_H = 6
MAX_DELAY_H = 48


def _probs(edges: tuple[float, ...], shift: float) -> np.ndarray:
    """The true bin probabilities of N(shift, 1) over `edges` (plus an empty missing bin)."""
    cdf = stats.norm.cdf(np.asarray(edges), loc=shift)
    return np.concatenate([np.diff(np.concatenate([[0.0], cdf, [1.0]])), [0.0]])


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    r, c = np.maximum(ref, 1e-4), np.maximum(cur, 1e-4)
    return float(np.sum((c - r) * np.log(c / r)))


class Baseline:
    """Hourly PSI and KS per feature (raw rows for KS; counts for PSI)."""

    def __init__(self, reference: list[np.ndarray], bins: list[Bins]) -> None:
        self.reference, self.bins = reference, bins

    def hour(self, rows: list[np.ndarray]) -> tuple[bool, bool]:
        psi = ks = False
        for f, values in enumerate(rows):
            b = self.bins[f]
            cur = np.bincount(b.index(values), minlength=len(b.counts)) / len(values)
            psi |= _psi(b.reference, cur) > 0.1
            ks |= bool(stats.ks_2samp(self.reference[f], values).pvalue < 0.05)
        return psi, ks


def run_delay(
    rate: int, shift: float, seed: int, reference: list[np.ndarray], bins: list[Bins]
) -> dict[str, Any]:
    """Minutes from the change to each monitor's alarm on one stream."""
    rng = np.random.default_rng(seed)
    per_batch = rate * BATCH_S
    detector = Detector(bins, threshold_for(YEAR_S, BATCH_S, BET_EVERY), start_every=BET_EVERY)
    baseline = Baseline(reference, bins)
    # The CUSUM that knows the change: log-likelihood ratio of the moved feature's bin counts.
    moved = bins[0]
    p0, p1 = _probs(moved.edges, 0.0)[:-1], _probs(moved.edges, shift)[:-1]
    llr = np.log(p1 / p0)
    h = math.log(YEAR_S / BATCH_S)
    cusum, found = 0.0, {"launchbay": None, "psi": None, "ks": None, "cusum": None}
    change = WARMUP_H * 60 + int(rng.integers(0, 60))  # not aligned with the hourly windows
    hour_rows: list[list[np.ndarray]] = [[] for _ in range(FEATURES)]
    for minute in range(change + MAX_DELAY_H * 60):
        after = minute >= change
        rows = [rng.normal(shift if (after and f == 0) else 0.0, size=per_batch) for f in range(FEATURES)]
        detector.update({b.name: b.index(rows[f]) for f, b in enumerate(bins)})
        if after and found["launchbay"] is None and detector.alarm_at is not None:
            found["launchbay"] = minute + 1 - change
        if after:
            counts = np.bincount(moved.index(rows[0]), minlength=len(moved.counts))[:-1]
            cusum = max(0.0, cusum + float(counts @ llr))
            if found["cusum"] is None and cusum >= h:
                found["cusum"] = minute + 1 - change
        for f in range(FEATURES):
            hour_rows[f].append(rows[f])
        if (minute + 1) % 60 == 0:
            psi, ks = baseline.hour([np.concatenate(r) for r in hour_rows])
            hour_rows = [[] for _ in range(FEATURES)]
            # A window that ends after the change and alarms detects it (earlier ones are false alarms).
            if minute + 1 > change:
                for name, hit in (("psi", psi), ("ks", ks)):
                    if hit and found[name] is None:
                        found[name] = minute + 1 - change
        if detector.alarm_at is not None and minute < change:
            detector = Detector(bins, detector.threshold, start_every=BET_EVERY)  # a false alarm: restart
        if all(v is not None for v in found.values()):
            break
    return found


def run_false_alarms(
    hours: int, rate: int, seed: int, reference: list[np.ndarray], bins: list[Bins]
) -> dict[str, Any]:
    """Alarms of each monitor over `hours` of a stationary stream."""
    rng = np.random.default_rng(seed)
    per_batch = rate * BATCH_S
    threshold = threshold_for(YEAR_S, BATCH_S, BET_EVERY)
    detector = Detector(bins, threshold, start_every=BET_EVERY)
    baseline = Baseline(reference, bins)
    alarms = {"launchbay": 0, "psi": 0, "ks": 0}
    top = 0.0
    started = time.monotonic()
    for hour in range(hours):
        hour_rows = [rng.normal(size=(60, per_batch)) for _ in range(FEATURES)]
        for m in range(60):
            stat = detector.update({b.name: b.index(hour_rows[f][m]) for f, b in enumerate(bins)})
            top = max(top, stat)
            if detector.alarm_at is not None:
                alarms["launchbay"] += 1
                detector = Detector(bins, threshold, start_every=BET_EVERY)
        psi, ks = baseline.hour([r.reshape(-1) for r in hour_rows])
        alarms["psi"] += psi
        alarms["ks"] += ks
        if hour % 100 == 99:
            print(
                f"  stationary: {hour + 1} h, alarms {alarms}, {time.monotonic() - started:.0f}s", flush=True
            )
    return {
        **alarms,
        "hours": hours,
        "rate": rate,
        "max_statistic": round(top, 1),
        "threshold": round(threshold, 1),
    }


def _cell(values: list[int | None]) -> str:
    got = [v for v in values if v is not None]
    if len(got) < len(values) / 2:
        return "-"
    return f"{statistics.median(got):g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--report", action="store_true", help="rewrite the table from the last run's JSON")
    args = parser.parse_args()
    if args.report:
        report(json.loads((RESULTS / "monitoring.json").read_text()), args.seeds)
        return
    rng = np.random.default_rng(0)
    reference = [rng.normal(size=REFERENCE_ROWS) for _ in range(FEATURES)]
    bins = [binned(f"f{f}", reference[f].tolist(), categorical=False) for f in range(FEATURES)]
    started = time.monotonic()
    delays: dict[str, dict[str, dict[str, list[int | None]]]] = {}
    for rate in RATES:
        for size, shift in SHIFTS.items():
            runs = [run_delay(rate, shift, 100 + s, reference, bins) for s in range(args.seeds)]
            delays.setdefault(str(rate), {})[size] = {k: [r[k] for r in runs] for k in runs[0]}
            print(f"delay at {rate} req/s, {size} shift: {delays[str(rate)][size]}", flush=True)
    false_alarms = run_false_alarms(args.hours, 10, 1, reference, bins)
    doc = {
        "features": FEATURES,
        "reference_rows": REFERENCE_ROWS,
        "batch_s": BATCH_S,
        "bet_every_batches": BET_EVERY,
        "false_alarm_every_s": YEAR_S,
        "shifts": SHIFTS,
        "delays_minutes": delays,
        "false_alarms": false_alarms,
        "seconds": round(time.monotonic() - started, 1),
    }
    (RESULTS / "monitoring.json").write_text(json.dumps(doc, indent=2) + "\n")
    report(doc, args.seeds)


def report(doc: dict[str, Any], seeds: int) -> None:
    """Write the Markdown table of a run (`--report` rewrites it from the JSON, without a run)."""
    delays, fa = doc["delays_minutes"], doc["false_alarms"]
    lines = [
        "# Live drift: detection delay and false alarms",
        "",
        f"{FEATURES} features, reference {REFERENCE_ROWS:,} rows, one batch a minute; one feature's mean moves "
        "by the shift (standard deviations). Delay: median minutes from the change to the alarm over "
        f"{seeds} seeds ('-': none within {MAX_DELAY_H} h in most). launchbay: e-detector, expected time to "
        "a false alarm >= 365 days for all features together. Baseline: hourly PSI > 0.1 / KS p < 0.05 per "
        "feature (Evidently's defaults). Ceiling: CUSUM knowing both distributions, same false-alarm target.",
        "",
        "| req/s | shift | launchbay | PSI hourly | KS hourly | ceiling (oracle CUSUM) |",
        "|---|---|---|---|---|---|",
    ]
    for rate, by_size in delays.items():
        for size, got in by_size.items():
            lines.append(
                f"| {rate} | {size} ({SHIFTS[size]}) | {_cell(got['launchbay'])} | {_cell(got['psi'])} | "
                f"{_cell(got['ks'])} | {_cell(got['cusum'])} |"
            )
    lines += [
        "",
        f"False alarms over {fa['hours']:,} stationary hours at {fa['rate']} req/s: launchbay {fa['launchbay']}, "
        f"PSI hourly {fa['psi']}, KS hourly {fa['ks']} (launchbay's highest statistic {fa['max_statistic']} "
        f"against its alarm level {fa['threshold']}).",
        "",
        "Reading it: an hourly monitor can only alarm at the end of an hour, so its delay is the time to the "
        "end of the first window after the change (the same for every shift size when it alarms there). At "
        "these sample sizes KS fires on any shift -- and on stationary hours too, as the false-alarm line "
        "shows; PSI over 0.1 misses small shifts altogether. launchbay's delay grows as the shift shrinks "
        "and the rate falls, and it stays silent on stationary traffic.",
        "",
        f"Run time {doc['seconds']} s.",
    ]
    (RESULTS / "monitoring.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
