"""Model directories as the train and sign steps leave them, made in-process for unit tests.

`saved(model, ...)` writes a fitted model in its library's safe format with MLflow (the same
calls `pipelines/model_log.py` makes) plus the `serving.json` the sign step writes; `signed_example`
trains the example fraud model on generated rows, makes its ONNX variant and signs the directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fraud_data
import fraud_model
import numpy as np
import pandas as pd
import yaml

from launchbay.checks.signature import generate_keypair, sign

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fraud-detector"
FEATURES: dict[str, dict[str, Any]] = yaml.safe_load((EXAMPLE / "launchbay.yaml").read_text())["data"][
    "features"
]


def feature_specs(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """serving.json's features for a frame's columns (types as `launchbay init` infers them)."""
    out: dict[str, dict[str, Any]] = {}
    for c in frame.columns:
        col = frame[c]
        if pd.api.types.is_bool_dtype(col):
            out[c] = {"type": "bool"}
        elif pd.api.types.is_integer_dtype(col):
            out[c] = {"type": "int"}
        elif pd.api.types.is_numeric_dtype(col):
            out[c] = {"type": "float", "nullable": bool(col.isna().any())}
        else:
            values = sorted(str(v) for v in col.dropna().unique())
            out[c] = {"type": "category", "values": values, "nullable": bool(col.isna().any())}
    return out


def saved(
    model: Any,
    directory: Path,
    task: str,
    features: dict[str, dict[str, Any]],
    threshold: float = 0.5,
) -> Path:
    """`directory` holding `model` as the train step logs it, and the sign step's serving.json."""
    import mlflow.lightgbm
    import mlflow.sklearn
    import mlflow.xgboost
    import skops.io

    lib = type(model).__module__.split(".")[0]
    classes = None if task == "regression" else np.asarray(model.classes_).tolist()
    meta = {"launchbay": {"task": task, "classes": classes, "library": lib}}
    if lib == "xgboost":
        mlflow.xgboost.save_model(
            model, str(directory), model_format="ubj", metadata=meta, pip_requirements=[]
        )
    elif lib == "lightgbm":
        mlflow.lightgbm.save_model(model.booster_, str(directory), metadata=meta, pip_requirements=[])
    else:
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        mlflow.sklearn.save_model(
            model, str(directory), serialization_format="skops", skops_trusted_types=trusted,
            metadata=meta, pip_requirements=[],
        )  # fmt: skip
    spec = {
        "model": "unit-model",
        "version": "1",
        "features": {k: {"nullable": False, **v} for k, v in features.items()},
        "decision_threshold": threshold,
        "task": task,
        "classes": classes,
    }
    (directory / "serving.json").write_text(json.dumps(spec, indent=2))
    return directory


def request_rows(frame: pd.DataFrame, n: int = 400) -> list[list[Any]]:
    """The first `n` rows as requests carry them (JSON values: None, not NaN)."""
    rows: list[list[Any]] = json.loads(frame.head(n).to_json(orient="values"))
    return rows


def example_frame(rows: int = 3000, seed: int = 1) -> pd.DataFrame:
    """Generated transactions (the example's own generator)."""
    return fraud_data.generate(rows, "good", seed=seed)


def signed_example(root: Path, onnx: bool = True) -> tuple[Path, Path]:
    """The example model trained, its ONNX variant made (when `onnx`), signed; returns
    (model directory, trusted public key)."""
    from launchbay.serving.onnx_variant import make_variant

    frame = example_frame()
    x, y = frame[list(FEATURES)], frame["is_fraud"]
    model = fraud_model.train(x, y, {"C": 0.5, "max_iter": 2000})
    directory = saved(model, root / "model", "binary", FEATURES, threshold=0.3)
    if onnx:
        report = make_variant(directory, request_rows(x))
        assert report.verdict.ok, report.to_dict()
    private, public = generate_keypair(root / "keys")
    sign(directory, private)
    return directory, public


def flip_byte(path: Path) -> bytes:
    """Flip one bit in the middle of a file (a tampered artefact); return the original bytes."""
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return original
