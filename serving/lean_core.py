"""The lean runtime's service, without a web framework: verify, load, validate, score, answer.

One `LeanService` answers every lean entry point the same way -- the HTTP runtime
(`serving/lean.py`), the AWS Lambda and Azure Functions handlers (`serving/functions.py`) and
the edge bundle -- with the BentoML service's API: `{"row": {...}}` or `{"rows": [...]}` in,
`{"model", "version", "predictions": [...]}` out, 400/415 in `{"error", "detail"}` for a
client's mistake, and a model that does not verify is never loaded.

It scores with the ONNX variant when the signed model carries one, else with the native model
(`serving.artefact`, which imports the model's library). On the ONNX path nothing imports
scikit-learn, pandas, MLflow, BentoML or model-signing: a cold start costs the interpreter,
numpy, onnxruntime and the user's own feature code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from launchbay.checks import lean_verify
from launchbay.serving.guard import is_json
from launchbay.serving.lean_model import has_variant, load_variant
from launchbay.serving.rows import BadRequest, RowSchema

SPEC_FILE = "serving.json"
MODEL_ENV = "LAUNCHBAY_MODEL"
TRUSTED_KEYS_ENV = "LAUNCHBAY_TRUSTED_KEYS"


class Refused(Exception):
    """The model does not verify (or cannot be loaded): nothing is served."""


Scorer = Callable[[Sequence[Sequence[Any]]], np.ndarray]
"""Rows (lists in the features' order) -> (n, k) probabilities or (n,) values."""


def native_scorer(model_dir: Path, features: list[str]) -> Scorer:
    """The native model as a scorer (imports its library: scikit-learn, XGBoost, LightGBM)."""
    from launchbay.serving.artefact import load
    from launchbay.serving.inputs import model_input

    predictor = load(model_dir)
    return lambda rows: predictor.output(model_input(predictor.model, [list(r) for r in rows], features))


def load_scorer(model_dir: Path, features: list[str]) -> tuple[Scorer, str]:
    """The scorer a (verified) model directory is served with, and which: `onnx` when it carries
    a kept variant, else `native`."""
    if has_variant(model_dir):
        return load_variant(model_dir), "onnx"
    return native_scorer(model_dir, features), "native"


def answers(spec: dict[str, Any], output: np.ndarray) -> list[dict[str, Any]]:
    """The answer for each row, exactly as the BentoML service's `schema.answers` gives it."""
    task = spec.get("task", "binary")
    if task == "regression":
        return [{"prediction": v} for v in np.asarray(output, dtype=float).reshape(-1).tolist()]
    out = np.asarray(output, dtype=float)
    classes = list(spec.get("classes") or range(out.shape[1]))
    if task == "binary":
        threshold = float(spec["decision_threshold"])
        return [
            {"prediction": classes[1] if s >= threshold else classes[0], "score": s}
            for s in out[:, 1].tolist()
        ]
    names = [str(c) for c in classes]
    return [
        {"prediction": classes[i], "score": row[i], "scores": dict(zip(names, row, strict=True))}
        for i, row in zip(out.argmax(axis=1).tolist(), out.tolist(), strict=True)
    ]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def trusted_keys_from_env() -> list[Path]:
    """`$LAUNCHBAY_TRUSTED_KEYS` (paths separated by the OS path separator), as the deployment sets it."""
    return [Path(p) for p in os.environ.get(TRUSTED_KEYS_ENV, "").split(os.pathsep) if p]


@dataclass
class Answer:
    """An HTTP answer: status and JSON body; `predictions` for the metrics of a good one."""

    status: int
    body: dict[str, Any]
    predictions: list[dict[str, Any]] | None = None

    def encoded(self) -> bytes:
        """The body as JSON bytes."""
        return json.dumps(self.body, separators=(",", ":")).encode()


class LeanService:
    """One signed model version, verified and loaded once.

    Raises (from the constructor):
        Refused: the signature does not verify against the trusted keys, or the model fails to load.
    """

    def __init__(self, model_dir: Path, trusted_keys: Sequence[Path], max_rows: int = 64) -> None:
        result = lean_verify.verify(model_dir, list(trusted_keys))
        if not result.verdict.ok:
            raise Refused(f"refusing to serve {model_dir}: {result.message}")
        self.model_dir = model_dir
        self.spec: dict[str, Any] = json.loads((model_dir / SPEC_FILE).read_text())
        self.features: dict[str, dict[str, Any]] = dict(self.spec["features"])
        self.schema = RowSchema(self.features)
        self.max_rows = max_rows
        try:
            self.scorer, self.variant = load_scorer(model_dir, list(self.features))
        except Exception as exc:
            raise Refused(
                f"refusing to serve {model_dir}: the model does not load: {type(exc).__name__}: {exc}"
            ) from exc

    @property
    def model(self) -> str:
        """The model's name (from the signed spec)."""
        return str(self.spec["model"])

    @property
    def version(self) -> str:
        """The model's version (from the signed spec)."""
        return str(self.spec["version"])

    def predict(self, raw: bytes, content_type: str | None = "application/json") -> Answer:
        """Answer one `/predict` request body. Client mistakes are 4xx, never an exception."""
        if content_type is not None and not is_json(content_type):
            return Answer(
                415,
                {
                    "error": f"Content-Type {content_type!r} is not supported",
                    "detail": "send the request body as application/json",
                },
            )
        try:
            body = json.loads(raw, parse_constant=_no_constants) if raw.strip() else None
        except (ValueError, UnicodeDecodeError) as exc:
            return Answer(400, {"error": "invalid request body", "detail": f"not JSON: {exc}"})
        return self.answer(body)

    def answer(self, body: Any) -> Answer:
        """Answer a request body already parsed (a local call: no JSON on the way in)."""
        try:
            rows = self.schema.rows(body, self.max_rows)
        except BadRequest as exc:
            return Answer(400, exc.body())
        predictions = answers(self.spec, self.scorer(rows))
        return Answer(
            200, {"model": self.model, "version": self.version, "predictions": predictions}, predictions
        )


def bento_model_dir(tag: str, bentoml_home: Path) -> Path:
    """The signed model directory of a BentoML model tag (`name:version`) in a BentoML store,
    found without importing BentoML (its store layout: `models/<name>/<version>/signed`)."""
    name, _, version = tag.partition(":")
    if not name or not version or "/" in tag or ".." in tag:
        raise Refused(f"{tag!r} is not a model tag (name:version)")
    return bentoml_home / "models" / name / version / "signed"
