"""A model's ONNX variant as the lean runtimes score with it: onnxruntime and numpy, nothing else.

The variant lives in the signed model directory (`onnx/variant.json` and `onnx/model.onnx`, both
covered by the model's one signature) and was kept only after it matched the native model on
the held-out rows (`launchbay.serving.onnx_variant`). `variant.json` says how rows reach the graph:

* `prefix`: the model's leading FunctionTransformers, kept as the user's own Python functions
  (imported by name from the code shipped with the model, like skops' trusted types) -- ONNX
  cannot hold arbitrary Python, and a user's feature engineering stays exactly theirs;
* `inputs`: one matrix (`X`, the request's features in `order`, after the prefix), or one
  column per feature (`columns`: a DataFrame-fed pipeline such as a ColumnTransformer);
* `output`: the graph output holding class probabilities (classifiers) or values (regressors).

Nothing here imports scikit-learn, pandas, MLflow or BentoML: this is the path a scale-to-zero
server, a function and a device load on a cold start.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VARIANT_DIR = "onnx"
VARIANT_FILE = "variant.json"
GRAPH_FILE = "model.onnx"

_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "string": object}


def variant_dir(model_dir: Path) -> Path:
    """Where a model directory keeps its ONNX variant."""
    return model_dir / VARIANT_DIR


def has_variant(model_dir: Path) -> bool:
    """True when the (signed) model directory carries a kept ONNX variant."""
    return (variant_dir(model_dir) / VARIANT_FILE).is_file()


def resolve(name: str) -> Callable[..., Any]:
    """`module:qualified.name` -> the function (the module must be importable: shipped code)."""
    module_name, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{name} is not a function")
    fn: Callable[..., Any] = obj
    return fn


@dataclass(frozen=True)
class OnnxScorer:
    """Scores rows (lists in the request's feature order) with the ONNX graph.

    Returns what `Predictor.output` returns for the native model: (n, k) probabilities whose
    columns follow `classes`, or (n,) values.
    """

    task: str
    classes: list[Any] | None
    session: Any
    prefix: tuple[tuple[Callable[..., Any], dict[str, Any]], ...]
    inputs: dict[str, Any]
    output: str

    def __call__(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        feeds = self.feeds(rows)
        (out,) = self.session.run([self.output], feeds)
        result = np.asarray(out, dtype=np.float64)
        if self.task == "regression":
            return result.reshape(-1)
        if result.ndim == 1:  # a single probability column
            result = np.column_stack([1.0 - result, result])
        return result

    def feeds(self, rows: Sequence[Sequence[Any]]) -> dict[str, np.ndarray]:
        """The graph's inputs for `rows`."""
        spec = self.inputs
        if spec["kind"] == "matrix":
            order = spec.get("order")
            picked = [[r[i] for i in order] for r in rows] if order is not None else rows
            if self.prefix:
                x: Any = np.asarray(picked, dtype=object)
                for fn, kwargs in self.prefix:
                    x = fn(x, **kwargs)
                return {spec["name"]: np.asarray(x, dtype=_DTYPES[spec["dtype"]])}
            values = [[np.nan if v is None else v for v in r] for r in picked]
            return {spec["name"]: np.asarray(values, dtype=_DTYPES[spec["dtype"]])}
        feeds = {}
        for col in spec["columns"]:
            i = col["index"]
            if col["dtype"] == "string":
                # A missing category is "" (its imputer was converted with that marker).
                texts = [["" if r[i] is None else str(r[i])] for r in rows]
                feeds[col.get("input", col["name"])] = np.asarray(texts, dtype=object)
            else:
                feeds[col.get("input", col["name"])] = np.asarray(
                    [[np.nan if r[i] is None else r[i]] for r in rows], dtype=_DTYPES[col["dtype"]]
                )
        return feeds


def read_variant(model_dir: Path) -> dict[str, Any]:
    """`onnx/variant.json` of a model directory."""
    doc: dict[str, Any] = json.loads((variant_dir(model_dir) / VARIANT_FILE).read_text())
    return doc


def load_variant(directory: Path, doc: dict[str, Any] | None = None) -> OnnxScorer:
    """Load the ONNX variant in `directory` (a model directory, or the variant's own directory
    while it is being gated); `doc` is its variant.json when not read from disk.

    Raises:
        ValueError: the description names a format this runtime does not know.
        ImportError: a prefix function's module is not importable (its code was not shipped).
    """
    import onnxruntime as ort

    root = directory if (directory / GRAPH_FILE).exists() else variant_dir(directory)
    doc = doc if doc is not None else json.loads((root / VARIANT_FILE).read_text())
    if doc.get("format") != "onnx":
        raise ValueError(f"{root}: variant format {doc.get('format')!r} is not onnx")
    options = ort.SessionOptions()
    # One row costs microseconds: a thread pool per call costs more than it saves, and the
    # server's cores belong to its requests.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(root / doc.get("file", GRAPH_FILE)), options, providers=["CPUExecutionProvider"]
    )
    prefix = tuple((resolve(p["function"]), dict(p.get("kw_args") or {})) for p in doc.get("prefix") or [])
    return OnnxScorer(
        task=str(doc["task"]),
        classes=doc.get("classes"),
        session=session,
        prefix=prefix,
        inputs=dict(doc["inputs"]),
        output=str(doc["output"]),
    )
