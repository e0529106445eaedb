"""The data gate's verdict reused for the same bytes under the same rules.

A data scientist re-runs the pipeline on unchanged data many times (a new feature in the model code,
another hyperparameter). The gate is a pure function of the data file's bytes, the reference file's
bytes, the `data:` and `gates:` settings it reads and launchbay's version (its drift resampling has a
fixed seed), so its report is kept under a digest of exactly those and reused: the same report, with
a line saying it was reused and when it was made. Any change to any of them is another key.

The cache lives in the private state directory (`Home.cache`); a file that cannot be read as a
report is ignored and replaced, never trusted half-way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import launchbay
from launchbay import storage
from launchbay.checks.report import CheckResult, GateReport
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.files import write_private

REUSED = "reused"
"""Summary key of a reused report: when the report it repeats was made."""


def key(cfg: LaunchbayConfig, data_digest: str) -> str | None:
    """The digest naming this gate's result; None when it cannot be named (the reference is
    unreadable: the gate itself reports that, every time)."""
    reference = None
    if cfg.data.reference:
        try:
            reference = storage.file_digest(cfg.resolve_path(cfg.data.reference))
        except Exception:  # missing, unreadable, a store that refuses: the gate says which
            return None
    rules = {
        "launchbay": launchbay.__version__,
        "data": data_digest,
        "reference": reference,
        "settings": cfg.data.model_dump(mode="json", exclude={"path", "reference"}),
        "task": cfg.model.task,
        "gates": {
            "max_null_fraction": cfg.gates.max_null_fraction,
            "drift": cfg.gates.drift.model_dump(mode="json"),
        },
    }
    return hashlib.sha256(json.dumps(rules, sort_keys=True, default=str).encode()).hexdigest()


def load(cache: Path, name: str, path: str) -> GateReport | None:
    """The kept report for `name`, its data path set to `path`; None if none (or unreadable)."""
    try:
        raw = json.loads((cache / f"{name}.json").read_text())
        report = GateReport(
            raw["gate"],
            [CheckResult(**{**c, "verdict": Verdict(c["verdict"])}) for c in raw["checks"]],
            {**raw["summary"], "data": path},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    report.summary[REUSED] = raw.get("made", "earlier")
    return report


def save(cache: Path, name: str, report: GateReport) -> None:
    """Keep `report` under `name` (a failure to keep it costs only the next run's time)."""
    data: dict[str, Any] = report.to_dict()
    data["made"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    with contextlib.suppress(OSError):
        write_private(cache / f"{name}.json", json.dumps(data, default=str))
