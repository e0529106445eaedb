"""A model card in Hugging Face's format: YAML metadata (with a `model-index` of results), then
Markdown sections -- what the EU AI Act's technical documentation asks for as well: intended use,
training data, evaluation against every gate, provenance.

The pipeline's sign step writes it into the model directory before signing, so the signature
covers it and `provenance.json` records its sha256; `launchbay card MODEL@REF` prints it (checked
against both) with what happened since -- the rollout's evidence from the ledger -- appended.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import yaml

CARD_FILE = "MODEL_CARD.md"
"""In the model directory (Hugging Face's Hub calls the same file README.md)."""
PIPELINE_TAGS = {"binary": "tabular-classification", "multiclass": "tabular-classification",
                 "regression": "tabular-regression"}  # fmt: skip


@dataclass(frozen=True)
class CardFacts:
    """What the card states, all known when the model is signed."""

    model: str
    version: str
    task: str
    data_path: str
    data_digest: str
    target: str
    features: dict[str, str]
    """Feature name -> type."""
    metrics: dict[str, float]
    """Held-out metrics of the trained model (the model gate's)."""
    gates: dict[str, str]
    """Gate name -> its outcome (e.g. data: PASS)."""
    reports: dict[str, str]
    """Gate report file -> sha256."""
    git_commit: str
    training_run: str
    tracking_uri: str
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    intended_use: str = ""
    limitations: str = ""
    serving: str = ""
    """What is served: onnx (with its parity check) or native and why."""


def render(f: CardFacts) -> str:
    """The signed card: front matter and sections."""
    metrics = sorted(f.metrics.items())
    unstated = "_Not stated: set `model.{}` in launchbay.yaml._".format
    meta: dict[str, Any] = {
        "model_name": f.model,
        "model_version": f.version,
        "pipeline_tag": PIPELINE_TAGS.get(f.task, "tabular-classification"),
        "tags": ["launchbay", "tabular", f.task],
        "datasets": [f.data_path],
        "launchbay": {
            "task": f.task,
            "data_digest": f.data_digest,
            "git_commit": f.git_commit or None,
            "training_run": f.training_run,
            "gates": dict(sorted(f.gates.items())),
        },
        "model-index": [
            {
                "name": f"{f.model}@v{f.version}",
                "results": [
                    {
                        "task": {"type": PIPELINE_TAGS.get(f.task, "tabular-classification")},
                        "dataset": {"name": "held-out rows", "type": f.data_path, "revision": f.data_digest},
                        "metrics": [{"type": k, "value": round(float(v), 6)} for k, v in metrics],
                    }
                ],
            }
        ],
    }
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", ""]
    lines += [f"# {f.model} v{f.version}", ""]
    lines += [f.description or f"A {f.task} model trained and released by launchbay.", ""]
    lines += ["## Intended use", "", f.intended_use or unstated("intended_use"), ""]
    lines += ["## Limitations", "", f.limitations or unstated("limitations"), ""]
    lines += ["## Training data", "", f"- data: `{f.data_path}` (sha256 `{f.data_digest}`)"]
    lines += [f"- target: `{f.target}`"]
    lines += [f"- features ({len(f.features)}): " + ", ".join(f"`{k}` ({v})" for k, v in f.features.items())]
    if f.params:
        lines += ["- training parameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(f.params.items()))]
    lines += ["", "## Evaluation", "", "Held-out metrics:", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {float(v):.4f} |" for k, v in metrics]
    lines += ["", "Every gate it passed on its way here:", "", "| gate | outcome |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(f.gates.items())]
    if f.reports:
        lines += ["", "Gate reports (in the training run's `reports/`):", ""]
        lines += [f"- `{name}` sha256 `{digest}`" for name, digest in sorted(f.reports.items())]
    lines += ["", "## Provenance", ""]
    lines += [f"- source commit: `{f.git_commit or 'unknown'}`"]
    lines += [f"- training run: `{f.training_run}` ({f.tracking_uri})"]
    if f.serving:
        lines += [f"- served as: {f.serving}"]
    lines += [
        f"- this card is one of the files `model.sig` signs, and `provenance.json` records its sha256:"
        f" `launchbay verify {f.model}@{f.version}` checks both",
        "",
    ]
    return "\n".join(lines)


def digest(text: str) -> str:
    """sha256 of a card's bytes (what provenance records)."""
    return hashlib.sha256(text.encode()).hexdigest()
