"""Example projects on disk for tests and benchmarks: the example repository's config, its model
module and seeded data, written to a directory of the test's own."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import fraud_data
import people
import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "fraud-detector"
EXAMPLE_CONFIG = EXAMPLE / "launchbay.yaml"
EXAMPLE_MODEL = EXAMPLE / "fraud_model.py"

FAST_ROLLOUT = {
    "shadow": {"duration": "4s", "max_disagreement": 0.05, "max_score_shift": 0.1},
    "steps": [25, 50],
    "interval": "1s",
    "analysis_window": "4s",
    "min_samples": 15,
    "max_consecutive_errors": 3,
    "grace_period": "10m",
    "start_timeout": "90s",
    # Generous absolute limits: each fault must be caught by the check its scenario names.
    "slo": {
        "p95_latency_ms": 500,
        "max_error_rate": 0.01,
        "max_p95_ratio_vs_stable": 2.0,
        "max_error_ratio_vs_stable": 2,
    },
}
"""A rollout of seconds (4 s of shadow, two canary steps of 4 s) for end-to-end runs and benchmarks."""

RISKY_ROW = {
    "amount": 950.5,
    "hour": 3,
    "merchant_category": "electronics",
    "distance_from_home_km": 120.0,
    "device_age_days": 2,
    "card_present": False,
    "transactions_last_24h": 6,
}
"""A request row the example model scores as fraud: night, new device, far from home, risky merchant."""


def write_project(
    root: Path,
    rows: int = 8000,
    variant: fraud_data.Variant = "good",
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write the example project under `root` (config, model module, data); return the config path.

    `overrides` maps dotted key paths (e.g. "gates.min_auc") to values.
    """
    data = root / "data"
    fraud_data.write(fraud_data.generate(rows, "good", seed=7), data / "reference.parquet")
    fraud_data.write(fraud_data.generate(rows, variant, seed=1), data / "transactions.parquet")
    shutil.copy(EXAMPLE_MODEL, root / EXAMPLE_MODEL.name)
    cfg = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for dotted, value in (overrides or {}).items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    approval = cfg.get("rollout", {}).get("approval", {})
    listed = approval.get("approvers")
    for name, key in (listed.items() if isinstance(listed, dict) else ()):
        if not Path(key).is_absolute():  # the example's approvers/NAME.pub: the test people's keys
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(people.public(name), root / key)
    path = root / "launchbay.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
