"""Registered model versions as files: resolve `MODEL@REF`, download, load the estimator."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from launchbay.errors import UsageError

if TYPE_CHECKING:
    from mlflow import MlflowClient


def parse_ref(text: str) -> tuple[str, str]:
    """Split `MODEL@REF` (REF: a version number or an alias such as `champion`)."""
    name, sep, ref = text.partition("@")
    if not sep or not name or not ref:
        raise UsageError(f"{text!r}: expected MODEL@VERSION or MODEL@ALIAS, e.g. fraud-detector@champion")
    return name, ref


def resolve(client: MlflowClient, name: str, ref: str) -> Any:
    """The registry's ModelVersion for a version number or an alias."""
    from mlflow.exceptions import MlflowException

    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException:
        raise UsageError(f"{name}@{ref}: no such model version or alias in the registry") from None


def model_id(version: Any) -> str:
    """The logged model behind a registered version (MLflow 3 `models:/m-...`)."""
    mid = getattr(version, "model_id", None)
    if mid:
        return str(mid)
    return str(version.source).removeprefix("models:/").split("/")[0]


def download(version: Any, dst: Path) -> Path:
    """Download a version's model directory (as signed: model files, serving.json, provenance, signature)."""
    import mlflow

    dst.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=str(version.source), dst_path=str(dst)))


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
