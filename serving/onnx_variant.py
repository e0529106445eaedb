"""The ONNX variant of a model: converted, gated against the native model, kept only if it agrees.

At sign time, before the signature is made, the native model (the files the model gate scored)
is converted to ONNX -- scikit-learn estimators and pipelines with skl2onnx, XGBoost and
LightGBM with onnxmltools -- and both are asked about the held-out rows. The variant is kept
(written to `onnx/` in the model directory, so the one signature covers it) only when

* every class score (or value) differs from the native one by at most `tolerance` (default
  1e-5; for a regressor relative to the value's size, max(1, |value|), since an absolute 1e-5 on a
  value of 10^4 is below single precision), and
* every row gets the same class under the task's decision rule (the binary threshold, argmax).

Otherwise the model is served natively, and the report (`onnx_variant.md/json`, a gate report
like the others) says why: no converter for the model, a conversion error, or the numbers.

A pipeline that starts with FunctionTransformers (user code, which ONNX cannot hold) is split:
those functions stay Python, imported by name from the shipped code, and the rest becomes the
graph. Single precision is tried first (what onnxruntime's ML operators are fastest at), double
precision when single does not agree.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from launchbay.checks.report import CheckResult, GateReport
from launchbay.checks.verdict import Verdict
from launchbay.serving.lean_model import GRAPH_FILE, VARIANT_FILE, load_variant, variant_dir

GATE = "onnx variant"
OPSET = {"": 17, "ai.onnx.ml": 3}
"""Opsets every onnxruntime since 1.15 runs (the converters' newest can outrun the runtime)."""
BOOSTER_OPSET = 15
"""The newest opset onnxmltools 1.16 converts XGBoost and LightGBM models to."""


class NotConvertible(Exception):
    """The model has no ONNX form here (the message says why, for the report)."""


@dataclass
class Candidate:
    """A converted graph and how rows reach it, before the parity gate."""

    graph: bytes
    doc: dict[str, Any]
    converter: str


@dataclass
class Parity:
    """How the variant's answers compare with the native model's on the same rows."""

    rows: int
    max_difference: float
    differing_classes: int
    examples: list[str] = field(default_factory=list)


def make_variant(model_dir: Path, rows: Sequence[Sequence[Any]], tolerance: float = 1e-5) -> GateReport:
    """Convert the native model in `model_dir`, gate it on `rows` (held-out rows as requests
    carry them: lists in `serving.json`'s feature order) and, if it agrees, write it to
    `model_dir/onnx/`.

    Returns the gate report: PASS means the variant was written; anything else says why not.
    Never raises for a model that does not convert.
    """
    from launchbay.serving.artefact import load
    from launchbay.serving.inputs import model_input

    spec = json.loads((model_dir / "serving.json").read_text())
    features = {name: str(f.get("type", "float")) for name, f in spec["features"].items()}
    threshold = float(spec.get("decision_threshold", 0.5))
    report = GateReport(GATE, summary={"held-out rows": len(rows), "tolerance": tolerance})
    predictor = load(model_dir)
    native = predictor.output(model_input(predictor.model, [list(r) for r in rows], list(features)))
    attempts: list[tuple[str, Candidate, Parity]] = []
    failure = ""
    for dtype in ("float32", "float64"):
        try:
            candidate = convert(predictor, features, rows, dtype)
            parity = _parity(candidate, native, rows, predictor.task, predictor.classes, threshold)
        except NotConvertible as exc:
            failure = f"{dtype}: {exc}" if attempts else str(exc)
            break
        except Exception as exc:  # a converter's or the runtime's own failure: served natively
            why = f"{type(exc).__name__}: {_whole(str(exc))}"
            failure = f"{dtype}: {why}" if attempts else why
            break
        attempts.append((dtype, candidate, parity))
        if parity.max_difference <= tolerance and parity.differing_classes == 0:
            break
    if not attempts:
        report.checks.append(CheckResult("converts to ONNX", Verdict.FAIL, "no", "yes", failure))
        report.summary["served"] = "natively"
        return report
    dtype, candidate, parity = attempts[-1]
    report.checks.append(CheckResult("converts to ONNX", Verdict.PASS, candidate.converter, "yes"))
    scale = "relative to max(1, |value|)" if predictor.task == "regression" else "absolute"
    report.checks.append(
        CheckResult(
            f"largest score difference vs native ({scale})",
            Verdict.PASS if parity.max_difference <= tolerance else Verdict.FAIL,
            float(f"{parity.max_difference:.3g}"),
            f"<= {tolerance:g}",
            "; ".join([f"{d}: {p.max_difference:.3g}" for d, _, p in attempts] + [failure] * bool(failure))
            if len(attempts) > 1 or failure
            else "",
        )
    )
    if predictor.task != "regression":
        report.checks.append(
            CheckResult(
                "rows whose class differs from native",
                Verdict.PASS if parity.differing_classes == 0 else Verdict.FAIL,
                parity.differing_classes,
                0,
                "; ".join(parity.examples),
            )
        )
    report.summary["precision"] = dtype
    if not report.verdict.ok:
        report.summary["served"] = "natively"
        return report
    report.summary["served"] = "onnx"
    candidate.doc["parity"] = {
        "rows": parity.rows,
        "max_difference": parity.max_difference,
        "differing_classes": parity.differing_classes,
        "tolerance": tolerance,
        "scale": scale,
    }
    target = variant_dir(model_dir)
    target.mkdir()
    (target / GRAPH_FILE).write_bytes(candidate.graph)
    (target / VARIANT_FILE).write_text(json.dumps(candidate.doc, indent=2) + "\n")
    return report


def _parity(
    candidate: Candidate,
    native: np.ndarray,
    rows: Sequence[Sequence[Any]],
    task: str,
    classes: list[Any] | None,
    threshold: float,
) -> Parity:
    """Score `rows` with the candidate exactly as a lean runtime would, and compare."""
    with tempfile.TemporaryDirectory(prefix="launchbay-onnx-") as tmp:
        (Path(tmp) / GRAPH_FILE).write_bytes(candidate.graph)
        scorer = load_variant(Path(tmp), candidate.doc)
        ours = scorer([list(r) for r in rows])
    if ours.shape != native.shape:
        return Parity(len(rows), float("inf"), len(rows), [f"shape {ours.shape} vs native {native.shape}"])
    if task == "regression":
        diff = np.abs(ours - native) / np.maximum(1.0, np.abs(native))
        return Parity(len(rows), float(diff.max(initial=0.0)), 0)
    diff = np.abs(ours - native)
    if task == "binary":
        picked_ours, picked_native = ours[:, 1] >= threshold, native[:, 1] >= threshold
    else:
        picked_ours, picked_native = ours.argmax(axis=1), native.argmax(axis=1)
    differing = np.flatnonzero(picked_ours != picked_native)
    names = list(classes or range(native.shape[1]))
    examples = [
        f"row {i}: native {names[int(np.argmax(native[i]))]} ({native[i].max():.6f}), "
        f"onnx {names[int(np.argmax(ours[i]))]} ({ours[i].max():.6f})"
        for i in differing[:3]
    ]
    return Parity(len(rows), float(diff.max(initial=0.0)), len(differing), examples)


def convert(predictor: Any, features: dict[str, str], rows: Sequence[Sequence[Any]], dtype: str) -> Candidate:
    """The ONNX graph of a loaded native model and the description of how rows reach it
    (`features`: name -> type, in the request's order).

    Raises:
        NotConvertible: the model (or part of it) has no ONNX form here.
    """
    model = predictor.model
    base = {"format": "onnx", "file": GRAPH_FILE, "task": predictor.task, "classes": predictor.classes}
    if predictor.booster:
        return _lightgbm(model, features, dtype, base)
    module = type(model).__module__.split(".")[0]
    if module == "xgboost":
        return _xgboost(model, features, dtype, base)
    if module != "sklearn":
        raise NotConvertible(f"no ONNX converter for {type(model).__module__}.{type(model).__name__}")
    return _sklearn(model, features, rows, dtype, base)


def _whole(message: str, limit: int = 2000) -> str:
    """A converter's message on one line, whole -- unless it is a dump (a graph), then its start
    and how much was left out, said as such rather than cut mid-word."""
    text = " ".join(message.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return f"{cut} ... ({len(text) - len(cut)} more characters)"


def _classifier(task: str) -> bool:
    return task != "regression"


def _sklearn(
    model: Any, features: dict[str, str], rows: Sequence[Sequence[Any]], dtype: str, base: dict[str, Any]
) -> Candidate:
    from sklearn.pipeline import Pipeline

    prefix, rest = _split_prefix(model)
    names = getattr(model, "feature_names_in_", None)
    if names is not None and prefix:
        raise NotConvertible("a FunctionTransformer on a DataFrame-fed model stays native")
    rest = _string_imputers(rest)
    final = rest.steps[-1][1] if isinstance(rest, Pipeline) else rest
    options = {id(final): {"zipmap": False}} if _classifier(base["task"]) else None
    if names is None:
        if not prefix and "category" in features.values():
            raise NotConvertible("the model takes text and numbers in one array; ONNX tensors hold one type")
        width = _width(prefix, list(features), rows)
        inputs: dict[str, Any] = {"kind": "matrix", "name": "X", "dtype": dtype, "order": None}
        graph = _skl2onnx(rest, [("X", _tensor(dtype, width))], options)
    else:
        inputs = _columns([str(n) for n in names], features, dtype)
        initial = [(c["name"], _tensor(c["dtype"], 1)) for c in inputs["columns"]]
        graph = _skl2onnx(rest, initial, options)
        inputs = _graph_inputs(graph, inputs)
    doc = {**base, "prefix": prefix, "inputs": inputs, "output": _output_name(graph, base["task"])}
    return Candidate(graph, doc, "skl2onnx")


def _string_imputers(model: Any) -> Any:
    """A copy in which imputers of text columns treat "" as missing: skl2onnx converts those
    only with a string marker, and the lean runtime feeds a missing category as "" (the
    statistics imputed stay the fitted ones)."""
    import copy

    from sklearn.impute import SimpleImputer

    clone = copy.deepcopy(model)
    stack = [clone]
    while stack:
        node = stack.pop()
        if isinstance(node, SimpleImputer) and getattr(node, "statistics_", None) is not None:
            if np.asarray(node.statistics_).dtype == object:
                node.missing_values = ""
            continue
        for attr in ("steps", "transformers_"):
            for item in getattr(node, attr, None) or []:
                stack.append(item[1])
    return clone


def _split_prefix(model: Any) -> tuple[list[dict[str, Any]], Any]:
    """Leading FunctionTransformers of a Pipeline as importable functions; the rest of it."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    if not isinstance(model, Pipeline):
        return [], model
    prefix = []
    steps = list(model.steps)
    while steps and isinstance(steps[0][1], FunctionTransformer):
        name, ft = steps.pop(0)
        prefix.append(_function_step(name, ft))
    if not steps:
        raise NotConvertible("the pipeline has no estimator after its FunctionTransformers")
    rest = steps[0][1] if len(steps) == 1 else Pipeline(steps)
    return prefix, rest


def _function_step(name: str, ft: Any) -> dict[str, Any]:
    from launchbay.serving.lean_model import resolve

    fn = ft.func
    if fn is None:
        return {"function": "numpy:asarray", "kw_args": {}}  # the identity on arrays
    qualname = getattr(fn, "__qualname__", "")
    ref = f"{getattr(fn, '__module__', '')}:{qualname}"
    if "<" in qualname or not getattr(fn, "__module__", None):
        raise NotConvertible(
            f"step {name!r}: {qualname or fn!r} is not importable by name (a lambda or local function)"
        )
    if ft.validate:
        raise NotConvertible(f"step {name!r}: a FunctionTransformer with validate=True stays native")
    try:
        same = resolve(ref) is fn
    except (ImportError, AttributeError, TypeError):
        same = False
    if not same:
        raise NotConvertible(f"step {name!r}: {ref} does not import back as the same function")
    kw_args = dict(ft.kw_args or {})
    try:
        json.dumps(kw_args)
    except TypeError:
        raise NotConvertible(f"step {name!r}: its kw_args are not plain values") from None
    return {"function": ref, "kw_args": kw_args}


def _width(prefix: list[dict[str, Any]], features: list[str], rows: Sequence[Sequence[Any]]) -> int:
    """Columns of the matrix the graph receives: the prefix's output width, else the features'."""
    from launchbay.serving.lean_model import resolve

    if not prefix:
        return len(features)
    x: Any = np.asarray([list(r) for r in rows[:5]], dtype=object)
    for p in prefix:
        x = resolve(p["function"])(x, **p["kw_args"])
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype == object:
        raise NotConvertible(
            f"the FunctionTransformers return {x.dtype} of shape {x.shape}, not a numeric matrix"
        )
    return int(x.shape[1])


def _columns(names: list[str], features: dict[str, str], dtype: str) -> dict[str, Any]:
    """One graph input per DataFrame column the model was fitted on: text for categories,
    numbers (booleans and integers too, as the fitted pipeline saw them) in `dtype`."""
    order = list(features)
    missing = [n for n in names if n not in features]
    if missing:
        raise NotConvertible(f"the model was fitted on columns that are not features: {', '.join(missing)}")
    columns = [
        {"name": n, "index": order.index(n), "dtype": "string" if features[n] == "category" else dtype}
        for n in names
    ]
    return {"kind": "columns", "columns": columns}


def _graph_inputs(graph: bytes, inputs: dict[str, Any]) -> dict[str, Any]:
    """Record the graph's own name for each column (`input`): skl2onnx rewrites names that are not
    identifiers ("od280/od315" -> "od280_od315"), while requests carry the column's name. The
    graph's inputs follow the initial types' order, one per column."""
    import onnx

    names = [str(i.name) for i in onnx.load_from_string(graph).graph.input]
    if len(names) != len(inputs["columns"]):
        raise NotConvertible(f"the graph has {len(names)} inputs for {len(inputs['columns'])} columns")
    columns = [{**c, "input": n} for c, n in zip(inputs["columns"], names, strict=True)]
    return {**inputs, "columns": columns}


def _tensor(dtype: str, width: int) -> Any:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    kinds = {"float32": FloatTensorType, "float64": DoubleTensorType, "string": StringTensorType}
    return kinds[dtype]([None, width])


def _skl2onnx(model: Any, initial: list[tuple[str, Any]], options: dict[int, Any] | None) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.exceptions import MissingShapeCalculator

    try:
        onx = convert_sklearn(model, initial_types=initial, options=options, target_opset=OPSET)
    except MissingShapeCalculator as exc:
        first = str(exc).splitlines()[0]
        raise NotConvertible(f"skl2onnx has no converter for a part of the model: {first}") from None
    data: bytes = onx.SerializeToString()
    return data


def _output_name(graph: bytes, task: str) -> str:
    import onnx

    outputs = [str(o.name) for o in onnx.load_from_string(graph).graph.output]
    if _classifier(task):
        for name in outputs:
            if "prob" in name:
                return name
        if len(outputs) > 1:
            return outputs[1]
    return outputs[0]


def _xgboost(model: Any, features: dict[str, str], dtype: str, base: dict[str, Any]) -> Candidate:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    if dtype != "float32":
        raise NotConvertible("XGBoost graphs are single precision only")
    fitted = getattr(model, "feature_names_in_", None)
    names = [str(n) for n in fitted] if fitted is not None else list(features)
    order = _order(names, list(features))
    clone = _without_feature_names(model)
    onx = onnxmltools.convert_xgboost(
        clone, initial_types=[("X", FloatTensorType([None, len(names)]))], target_opset=BOOSTER_OPSET
    )
    graph: bytes = onx.SerializeToString()
    inputs = {"kind": "matrix", "name": "X", "dtype": "float32", "order": order}
    doc = {**base, "prefix": [], "inputs": inputs, "output": _output_name(graph, base["task"])}
    return Candidate(graph, doc, "onnxmltools (xgboost)")


def _without_feature_names(model: Any) -> Any:
    """onnxmltools reads features as f0, f1, ...; a booster trained on named columns is copied
    with its names dropped (the graph's input order is the model's own column order)."""
    import copy

    clone = copy.deepcopy(model)
    booster = clone.get_booster()
    booster.feature_names = None
    booster.feature_types = None
    return clone


def _lightgbm(booster: Any, features: dict[str, str], dtype: str, base: dict[str, Any]) -> Candidate:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    if dtype != "float32":
        raise NotConvertible("LightGBM graphs are single precision only")
    names = list(booster.feature_name())
    order = _order(names, list(features)) if set(names) <= set(features) else None
    if order is None and len(names) != len(features):
        raise NotConvertible(f"the booster has {len(names)} features, the request {len(features)}")
    onx = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[("X", FloatTensorType([None, len(names)]))],
        zipmap=False,
        target_opset=BOOSTER_OPSET,
    )
    graph: bytes = onx.SerializeToString()
    inputs = {"kind": "matrix", "name": "X", "dtype": "float32", "order": order}
    doc = {**base, "prefix": [], "inputs": inputs, "output": _output_name(graph, base["task"])}
    return Candidate(graph, doc, "onnxmltools (lightgbm)")


def _order(names: list[str], features: list[str]) -> list[int] | None:
    """Positions of the model's columns among the request's features (None: the same order)."""
    if names == features:
        return None
    missing = [n for n in names if n not in features]
    if missing:
        raise NotConvertible(f"the model was fitted on columns that are not features: {', '.join(missing)}")
    return [features.index(n) for n in names]


def parity_of(model_dir: Path) -> dict[str, Any]:
    """The parity numbers a kept variant was gated on (from its variant.json)."""
    from launchbay.serving.lean_model import read_variant

    parity: dict[str, Any] = read_variant(model_dir).get("parity") or {}
    return parity


def discard(model_dir: Path) -> None:
    """Remove a variant (e.g. before signing again)."""
    shutil.rmtree(variant_dir(model_dir), ignore_errors=True)
