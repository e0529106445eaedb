"""A registered model directory as the service loads it (resolving and downloading: `launchbay.registry`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_estimator(model_dir: Path) -> Any:
    """Load the scikit-learn estimator of an MLflow model directory, without importing MLflow.

    skops files are loaded with the trusted types MLflow recorded in `MLmodel`; those were written
    by our train step and are covered by the signature verified before this is called.
    """
    import yaml

    flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["sklearn"]
    path = model_dir / flavor["pickled_model"]
    if flavor.get("serialization_format") == "skops":
        import skops.io

        return skops.io.load(path, trusted=list(flavor.get("skops_trusted_types") or []))
    import mlflow.sklearn

    return mlflow.sklearn.load_model(str(model_dir))
