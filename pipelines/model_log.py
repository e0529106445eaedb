"""Log a trained model to MLflow in a format that loads without running arbitrary code.

What the user's `train` returned decides the format: an XGBoost estimator is saved in XGBoost's
UBJSON format, a LightGBM estimator as its booster's text model, anything else as a scikit-learn
estimator or pipeline in a skops file (the types it needs recorded beside it). `MLmodel`'s
`metadata.launchbay` carries the task and class labels the gate and the service answer in
(`launchbay.serving.artefact` reads all of it back).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import numpy as np

from launchbay.config import LaunchbayConfig
from launchbay.errors import ConfigError
from launchbay.serving.package import unshipped_modules

BASE_REQUIREMENTS = ["scikit-learn==1.9.*", "skops", "numpy", "pandas"]
"""Pip requirements of every logged model, given explicitly: MLflow's inference costs ~8 s."""


def library(model: Any) -> str:
    """The library a fitted model belongs to: xgboost, lightgbm or sklearn (everything else)."""
    top = type(model).__module__.split(".")[0]
    return top if top in {"xgboost", "lightgbm"} else "sklearn"


def requirement(module: str) -> str:
    """`dist==version` of the distribution that provides an importable module (xgboost may come
    as `xgboost` or `xgboost-cpu`)."""
    try:  # the distribution's name is the module's (fast); else the full map (seconds)
        return f"{module}=={importlib.metadata.version(module)}"
    except importlib.metadata.PackageNotFoundError:
        dist = (importlib.metadata.packages_distributions().get(module) or [module])[0]
        return f"{dist}=={importlib.metadata.version(dist)}"


def boosters_inside(model: Any) -> list[str]:
    """XGBoost/LightGBM estimators nested in a scikit-learn pipeline (which skops cannot save
    safely; launchbay saves a booster only as the model itself)."""
    steps = getattr(model, "steps", None) or []
    return [type(s).__name__ for _, s in steps if library(s) != "sklearn"]


def classes_of(model: Any, cfg: LaunchbayConfig) -> list[Any] | None:
    """The class labels of a classifier as plain JSON values; None for a regressor.

    Raises:
        ConfigError: the model does not fit `model.task` (no probabilities, wrong class count).
    """
    task = cfg.model.task
    where = f"{cfg.model.train} (model.task {task})"
    if nested := boosters_inside(model):
        raise ConfigError(
            f"{cfg.model.train} returned a scikit-learn pipeline around {', '.join(nested)}: return the "
            "booster's estimator itself (it is saved in its own format), with features it can read"
        )
    if task == "regression":
        if not hasattr(model, "predict"):
            raise ConfigError(f"{where} returned {type(model).__name__}, which has no predict()")
        return None
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise ConfigError(
            f"{where} returned {type(model).__name__}, which has no predict_proba()/classes_: "
            "a classifier is expected (or set model.task: regression)"
        )
    classes: list[Any] = np.asarray(model.classes_).tolist()
    if task == "binary" and len(classes) != 2:
        raise ConfigError(
            f"{where}: the model knows {len(classes)} classes {classes[:10]}; a binary model has "
            "two (set model.task: multiclass)"
        )
    if task == "multiclass" and len(classes) < 3:
        raise ConfigError(f"{where}: the model knows {len(classes)} classes; set model.task: binary")
    return classes


def log_model(
    model: Any, cfg: LaunchbayConfig, classes: list[Any] | None, sample: Any, output: np.ndarray
) -> Any:
    """Log `model` as the run's `model` in its library's safe format; return MLflow's ModelInfo."""
    from mlflow.models import infer_signature

    lib = library(model)
    meta = {"launchbay": {"task": cfg.model.task, "classes": classes, "library": lib}}
    requirements = [*BASE_REQUIREMENTS, *cfg.model.requirements]
    signature = infer_signature(sample, output)
    common: dict[str, Any] = {"name": "model", "signature": signature, "metadata": meta}
    if lib == "xgboost":
        import mlflow.xgboost

        return mlflow.xgboost.log_model(
            model, model_format="ubj", pip_requirements=[*requirements, requirement("xgboost")], **common
        )
    if lib == "lightgbm":
        import mlflow.lightgbm

        # The sklearn wrapper would be pickled; its booster is a text model (labels in metadata).
        booster = getattr(model, "booster_", model)
        return mlflow.lightgbm.log_model(
            booster, pip_requirements=[*requirements, requirement("lightgbm")], **common
        )
    import mlflow.sklearn
    import skops.io

    # skops refuses to load types it does not know; the types this model needs are listed
    # with it. They come from our own training step, and the artefact is signed later.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    code = cfg.code_paths()
    if missing := unshipped_modules(trusted, code):
        # Caught before anything is registered: the served model would fail to import.
        shipped = ", ".join(p.name for p in code) or "nothing"
        raise ConfigError(
            f"{cfg.model.train} returned a model that uses code from {', '.join(missing)}, which "
            f"would not be shipped with it (model.code: {shipped}); list it in model.code"
        )
    return mlflow.sklearn.log_model(
        model, pip_requirements=requirements, skops_trusted_types=trusted, **common
    )
