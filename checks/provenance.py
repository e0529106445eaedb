"""Provenance: an in-toto Statement binding a model's digest to where it came from.

It is written into the model directory before signing, so the signature covers it: what the
statement says about the model (commit, data, run, gate reports) cannot be changed afterwards
without failing verification.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROVENANCE_FILE = "provenance.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://launchbay.dev/provenance/v1"


def statement(
    *,
    model: str,
    version: str,
    model_digest: str,
    git_commit: str,
    data_digest: str,
    run_id: str,
    tracking_uri: str,
    reports: dict[str, str],
    gates: dict[str, str],
    variants: dict[str, Any] | None = None,
    model_card: str | None = None,
) -> dict[str, Any]:
    """Build the statement (subject: the model files' digest; predicate: their origin).

    `variants`: what will be served -- `{"onnx": {"sha256": ..., "parity": {...}}}` when the ONNX
    variant was kept, `{"native": "why not"}` otherwise. `model_card`: the card's sha256.
    """
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{model}@v{version}", "digest": {"sha256": model_digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "builder": "launchbay",
            "model": model,
            "version": version,
            "source": {"git_commit": git_commit or None},
            "data": {"digest": data_digest},
            "training_run": {"id": run_id, "tracking_uri": tracking_uri},
            "gates": gates,
            "gate_reports": {name: {"sha256": digest} for name, digest in sorted(reports.items())},
            "serving": dict(variants or {}),
            **({"model_card": {"file": "MODEL_CARD.md", "sha256": model_card}} if model_card else {}),
        },
    }


def write(model_dir: Path, doc: dict[str, Any]) -> Path:
    """Write `provenance.json` into the model directory."""
    path = model_dir / PROVENANCE_FILE
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def read(model_dir: Path) -> dict[str, Any]:
    """Read `provenance.json` from a model directory."""
    doc: dict[str, Any] = json.loads((model_dir / PROVENANCE_FILE).read_text())
    return doc
