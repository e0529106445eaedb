"""A registered model directory as the gate and the service load it: one `Predictor` per format.

The train step saves each library's model in a format that loads without running arbitrary code:
scikit-learn through skops (with the types it needs recorded in `MLmodel`, covered by the
signature), XGBoost in its own UBJSON format, LightGBM as its booster's text model. `MLmodel`'s
`metadata.launchbay` records the task and the class labels, so every reader (the model gate, the
service) answers in the same terms whatever library trained the model. MLflow itself is not
imported: the service starts faster without it, and the formats are read the way MLflow wrote them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

XGBOOST_CLASSES = frozenset({"XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor"})
"""The XGBoost estimators a model may be (loaded by name from `xgboost.sklearn` only)."""


@dataclass(frozen=True)
class Predictor:
    """A loaded model that answers for its task.

    `output(rows)`: for classification, an (n, k) array of probabilities whose columns follow
    `classes`; for regression, an (n,) array of values.
    """

    task: str
    model: Any
    classes: list[Any] | None
    booster: bool = False
    """A LightGBM booster: it predicts from the feature matrix and returns bare probabilities."""

    def output(self, rows: Any) -> np.ndarray:
        """Probabilities per class (classification) or values (regression) for `rows`."""
        if self.task == "regression":
            return np.asarray(self.model.predict(rows), dtype=float).reshape(-1)
        if self.booster:
            raw = np.asarray(self.model.predict(rows), dtype=float)
            return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        return np.asarray(self.model.predict_proba(rows), dtype=float)


def metadata(model_dir: Path) -> dict[str, Any]:
    """`MLmodel` as written by MLflow (flavors, and launchbay's own metadata)."""
    import yaml

    doc: dict[str, Any] = yaml.safe_load((model_dir / "MLmodel").read_text())
    return doc


def load(model_dir: Path) -> Predictor:
    """Load the model of an MLflow model directory in its safe format.

    Raises:
        ValueError: a format launchbay does not load (e.g. a pickle), or a class not allowed.
    """
    doc = metadata(model_dir)
    flavors = doc.get("flavors") or {}
    info = (doc.get("metadata") or {}).get("launchbay") or {}
    task = str(info.get("task", "binary"))
    classes = info.get("classes")
    if "xgboost" in flavors:
        return Predictor(task, _xgboost(model_dir, flavors["xgboost"]), classes)
    if "lightgbm" in flavors:
        import lightgbm

        flavor = flavors["lightgbm"]
        if flavor.get("model_class", "lightgbm.basic.Booster") != "lightgbm.basic.Booster":
            raise ValueError("a LightGBM model must be saved as its booster (text), not pickled")
        booster = lightgbm.Booster(model_file=str(model_dir / flavor["data"]))
        return Predictor(task, booster, classes, booster=True)
    if "sklearn" in flavors:
        model = _sklearn(model_dir, flavors["sklearn"])
        if classes is None and task != "regression":
            classes = np.asarray(model.classes_).tolist()
        return Predictor(task, model, classes)
    raise ValueError(f"{model_dir}: no model flavor launchbay can load ({', '.join(flavors) or 'none'})")


def _sklearn(model_dir: Path, flavor: dict[str, Any]) -> Any:
    """skops files load with the trusted types recorded in `MLmodel`: those were written by the
    train step and are covered by the signature verified before a service calls this."""
    if flavor.get("serialization_format") != "skops":
        raise ValueError(
            f"{model_dir}: scikit-learn model saved as {flavor.get('serialization_format')!r}; "
            "launchbay loads skops files only (a pickle runs arbitrary code)"
        )
    import skops.io

    path = model_dir / flavor["pickled_model"]
    return skops.io.load(path, trusted=list(flavor.get("skops_trusted_types") or []))


def _xgboost(model_dir: Path, flavor: dict[str, Any]) -> Any:
    module, _, name = str(flavor.get("model_class", "")).rpartition(".")
    if not module.startswith("xgboost") or name not in XGBOOST_CLASSES:
        raise ValueError(f"{model_dir}: XGBoost model class {flavor.get('model_class')!r} is not allowed")
    cls = getattr(importlib.import_module("xgboost"), name)
    model = cls()
    model.load_model(str(model_dir / flavor["data"]))
    return model
