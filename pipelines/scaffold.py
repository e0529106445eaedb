"""`launchbay init`: a model repository's files, written from templates and (optionally) its data.

With a data file, the features are inferred from it: numbers become `float`/`int` features with
bounds rounded outward from the observed range, booleans `bool`, text with few distinct values
`category` with those values; the task is inferred from the target (two values: binary; a few:
multiclass; many numbers: regression) unless given. Nothing existing is overwritten unless asked.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from launchbay.config import LaunchbayConfig
from launchbay.errors import UsageError

MAX_CATEGORIES = 50
"""Text columns with more distinct values than this are left out (ids, free text)."""
MAX_CLASSES = 20
"""A numeric target with more distinct values than this is taken for a regression target."""

_ESTIMATORS = {
    "binary": ("LogisticRegression(C=float(params.get(\"C\", 1.0)), max_iter=1000)", "a logistic regression"),
    "multiclass": (
        "LogisticRegression(C=float(params.get(\"C\", 1.0)), max_iter=1000)",
        "a (multinomial) logistic regression",
    ),
    "regression": ("Ridge(alpha=float(params.get(\"alpha\", 1.0)))", "a ridge regression"),
}
_GATES = {
    "binary": (
        "  min_auc: 0.75  # floors on the held-out rows\n"
        "  min_precision: 0.0\n"
        "  min_recall: 0.0\n"
        "  min_f1: 0.0\n"
        "  decision_threshold: 0.5  # score at or above which the positive class is predicted\n"
        "  vs_champion: [roc_auc]  # metrics the candidate must not lose against the champion"
    ),
    "multiclass": (
        "  min_auc: 0.75  # floors on the held-out rows (macro averages)\n"
        "  min_precision: 0.0\n"
        "  min_recall: 0.0\n"
        "  min_f1: 0.0\n"
        "  vs_champion: [roc_auc]  # metrics the candidate must not lose against the champion"
    ),
    "regression": (
        "  max_rmse: null  # ceilings/floor on the held-out rows (null: none)\n"
        "  max_mae: null\n"
        "  min_r2: 0.0\n"
        "  vs_champion: [rmse]  # errors compare relatively: 0.01 = at most 1% worse"
    ),
}
# `offline`: what the model gate measured between the candidate and the champion on the same rows,
# plus `margin` -- a retrain's expected change passes, skew or a broken feature does not.
_SHADOW = {
    "binary": "max_disagreement: offline, max_score_shift: offline, margin: 0.03",
    "multiclass": "max_disagreement: offline, max_score_shift: offline, margin: 0.03",
    "regression": "max_relative_difference: offline, margin: 0.03",
}


def sizing(rps: float) -> dict[str, str]:
    """Rollout settings each analysis can decide on at `rps` requests per second: the weights, the
    window that holds min_samples at the smallest weight (with half again to spare), the shadow's
    duration and min_samples itself. Low traffic gets larger first steps and longer windows rather
    than a release that waits forever."""
    if rps >= 100:
        steps, minimum = [5, 25, 50], 50
    elif rps >= 5:
        steps, minimum = [10, 25, 50], 50
    else:
        steps, minimum = [25, 50], 30
    window = max(10, math.ceil(1.5 * minimum / (rps * steps[0] / 100) / 5) * 5)
    shadow = max(30, math.ceil(1.5 * minimum / rps / 5) * 5)
    return {
        "RPS": f"{rps:g}",
        "STEPS": ", ".join(map(str, steps)),
        "WINDOW": f"{window}s",
        "MIN_SAMPLES": str(minimum),
        "SHADOW_DURATION": f"{shadow}s",
        "INTERVAL": "2s" if window <= 60 else "5s",
    }


@dataclass(frozen=True)
class Inferred:
    """What a data file says about a project: task, features, rows, columns left out."""

    task: str
    features: dict[str, dict[str, Any]]
    rows: int
    left_out: dict[str, str]
    """Column -> why it is not a feature."""
    id_column: str | None = None
    """A column that identifies rows (every value distinct, named like an id): the data gate
    checks it is unique, and it is no feature."""


def infer(frame: Any, target: str, task: str | None = None) -> Inferred:
    """Infer the task and the feature specs from a DataFrame.

    Raises:
        UsageError: the target is not a column, or nothing is left to learn from.
    """
    import pandas as pd

    if target not in frame.columns:
        raise UsageError(f"--target {target}: no such column (columns: {', '.join(map(str, frame.columns))})")
    y = frame[target].dropna()
    distinct = y.nunique()
    if task is None:
        numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
        if distinct == 2:
            task = "binary"
        elif numeric and (distinct > MAX_CLASSES or (pd.api.types.is_float_dtype(y) and distinct > 2)):
            task = "regression"
        else:
            task = "multiclass"
    features: dict[str, dict[str, Any]] = {}
    left_out: dict[str, str] = {}
    id_column: str | None = None
    for column in frame.columns:
        if column == target:
            continue
        col = frame[column]
        spec: dict[str, Any]
        distinct_values = col.dropna().nunique() == len(col) > 1
        if distinct_values and _ID_NAME.search(str(column)) and not pd.api.types.is_float_dtype(col):
            left_out[str(column)] = "an id: every value distinct"
            id_column = id_column or str(column)
            continue
        if pd.api.types.is_bool_dtype(col):
            spec = {"type": "bool"}
        elif pd.api.types.is_numeric_dtype(col):
            kind = "int" if pd.api.types.is_integer_dtype(col) else "float"
            values = col.dropna()
            if values.empty:
                left_out[str(column)] = "no values"
                continue
            low, high = with_margin(float(values.min()), float(values.max()), float(values.median()))
            spec = {"type": kind, "min": low, "max": high}
            if kind == "int":
                spec = {**spec, "min": math.floor(low), "max": math.ceil(high)}
        else:
            values = sorted(map(str, col.dropna().unique()))
            if len(values) > MAX_CATEGORIES or len(values) == len(col.dropna()) > 1:
                left_out[str(column)] = f"{len(values)} distinct text values (an id or free text?)"
                if distinct_values and id_column is None:
                    id_column = str(column)
                continue
            spec = {"type": "category", "values": values}
        if col.isna().any():
            spec["nullable"] = True
        features[str(column)] = spec
    if not features:
        raise UsageError(f"no usable feature columns besides the target {target!r}")
    return Inferred(task, features, len(frame), left_out, id_column)


_ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|key|number)$|^id[_\s.-]|[a-z]Id$", re.IGNORECASE)
"""Names of columns that identify rows: patient_id, id, customerId, order-key."""


REFERENCE_ROWS = 5000
"""Rows of the user's data `init` keeps as the drift reference (a seeded sample)."""


def reference_sample(frame: Any, rows: int = REFERENCE_ROWS) -> Any:
    """The drift reference `init` writes: the data as it is today (a seeded sample of it)."""
    return frame.sample(n=min(rows, len(frame)), random_state=0).sort_index()


def with_margin(low: float, high: float, median: float | None = None) -> tuple[float, float]:
    """Bounds around an observed range [low, high] with its `median`: each end widened by twice
    its distance from the median (at least half the range), rounded outward, never below 0 for data
    that is never negative. A heavy tail gets room to grow with more data (breast cancer's area
    error: 233 in 60% of the rows, 542 in all -> bound 700); a light one stays near its data (mean
    radius 6.98-28.1 -> 0-60, not 100); a unit error (x10, x1000) does not fit."""
    mid = (low + high) / 2 if median is None else median
    span = high - low or abs(high) or 1.0
    lo = low - max(span / 2, 2 * (mid - low))
    hi = high + max(span / 2, 2 * (high - mid))
    if low >= 0:
        lo = max(lo, 0.0)
    step = 10.0 ** math.floor(math.log10(hi - lo)) / 2
    lo = math.floor(lo / step) * step
    hi = math.ceil(hi / step) * step
    return round(lo, 10), round(hi, 10)


def outward(value: float, low: bool = False) -> float:
    """A bound rounded away from the observed value to a power of ten (3.87 -> 10, 870 -> 1000,
    -3.2 -> -10; a positive minimum becomes 0), so next week's data does not trip it while a unit
    error does."""
    if value == 0 or (low and value > 0) or (not low and value < 0):
        return 0.0
    return math.copysign(10.0 ** (math.floor(math.log10(abs(value))) + 1), value)


def model_name(directory: Path) -> str:
    """A DNS-label model name from a directory's name."""
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")[:63].strip("-")
    return name or "model"


def files(
    directory: Path,
    *,
    name: str,
    task: str,
    data: str,
    target: str,
    inferred: Inferred | None,
    approvers: list[str],
    package: str,
    module: str = "model",
    rps: float = 1.0,
    reference: str | None = None,
) -> dict[Path, str]:
    """Every file `launchbay init` writes, relative to `directory`, with its text."""
    estimator, estimator_name = _ESTIMATORS[task]
    features = inferred.features if inferred else {"feature_1": {"type": "float", "min": 0, "max": 100}}
    lines = [f"    {k}: {_flow(v)}" for k, v in features.items()]
    if inferred and inferred.left_out:
        lines += [f"    # left out: {k} ({why})" for k, why in inferred.left_out.items()]
    if approvers:
        approval = "    required: true  # four eyes: never the release's author\n"
        approval += "    approvers:  # `launchbay keys approver NAME --public-key approvers/NAME.pub`\n"
        approval += "\n".join(f"      {a}: approvers/{a}.pub" for a in approvers)
    else:
        approval = (
            "    required: false  # set true and list approvers before production:\n"
            "    approvers: {}  #   {alice: approvers/alice.pub}; see `launchbay keys approver`"
        )
    rows = inferred.rows if inferred else 1000
    config = _fill(
        _template("launchbay.yaml"),
        NAME=name,
        MODULE=module,
        TASK=task,
        DATA=data,
        TARGET=target,
        MIN_ROWS=str(max(20, min(1000, rows // 2))),
        SOURCE=data if inferred else "an example (replace with your data's columns)",
        FEATURES="\n".join(lines),
        GATES=_GATES[task],
        SHADOW=_SHADOW[task],
        APPROVAL=approval,
        REFERENCE=reference or "null",
        ID_COLUMN=(inferred.id_column if inferred else None) or "null",
        **sizing(rps),
    )
    config = _align_comments(config)
    model_import = "from sklearn.linear_model import Ridge" if task == "regression" else (
        "from sklearn.linear_model import LogisticRegression"
    )
    model = _fill(_template("model.py.in"), MODULE=module, ESTIMATOR=estimator, ESTIMATOR_NAME=estimator_name)
    model = model.replace(
        "    from sklearn.compose import ColumnTransformer\n",
        f"    from sklearn.compose import ColumnTransformer\n    {model_import}\n",
    )
    out = {
        Path("launchbay.yaml"): config,
        Path(f"{module}.py"): model,
        Path(".gitignore"): _template("gitignore"),
        Path("launchbay.schema.json"): schema_text(),
    }
    for workflow in ("launchbay-pipeline.yml", "launchbay-promote.yml", "launchbay-rollback.yml"):
        filled = _fill(_template(f"github/{workflow}"), PACKAGE=package, MODEL=name)
        out[Path(".github/workflows") / workflow] = filled
    return out


def schema() -> dict[str, Any]:
    """The JSON Schema of `launchbay.yaml`, generated from the config's pydantic models."""
    doc = LaunchbayConfig.model_json_schema()
    doc["properties"].pop("source", None)  # set by the loader, never by the file
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "launchbay.yaml"
    return doc


def schema_text() -> str:
    """`schema()` as the text of a file."""
    return json.dumps(schema(), indent=2) + "\n"


def _flow(spec: dict[str, Any]) -> str:
    """A feature spec as a one-line YAML mapping."""
    parts = []
    for key, value in spec.items():
        if isinstance(value, list):
            parts.append(f"{key}: [{', '.join(json.dumps(v) for v in value)}]")
        elif isinstance(value, bool):
            parts.append(f"{key}: {'true' if value else 'false'}")
        elif isinstance(value, float) and value.is_integer():
            parts.append(f"{key}: {int(value)}")
        else:
            parts.append(f"{key}: {value}")
    return "{" + ", ".join(parts) + "}"


def _align_comments(text: str, column: int = 44) -> str:
    """Line the trailing comments of a YAML file up again after the placeholders were filled."""
    lines = []
    for line in text.splitlines():
        m = re.match(r"^(\s*[^#\s].*?)\s{2,}(# .*)$", line)
        if m and '"' not in m.group(1):
            line = f"{m.group(1).ljust(column - 2)}  {m.group(2)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _template(name: str) -> str:
    return (resources.files("launchbay.pipelines") / "templates" / name).read_text()


def _fill(text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    leftover = re.search(r"@@[A-Z_]+@@", text)
    assert leftover is None, leftover
    return text
