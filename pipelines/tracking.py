"""MLflow tracking and registry: where runs go, and the checks made before any work starts.

The embedded default is SQLite under the state directory with artefacts beside it; any MLflow
URI (an `http(s)://` tracking server, a database URL) given in `mlflow.tracking_uri` or
`$MLFLOW_TRACKING_URI` is honoured instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem
from launchbay.home import Home

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"


def tracking_uri(cfg: LaunchbayConfig, home: Home) -> str:
    """The tracking URI in force: config, then `$MLFLOW_TRACKING_URI`, then SQLite in `home`."""
    return cfg.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home.mlflow_db}"


def preflight(cfg: LaunchbayConfig, home: Home) -> str:
    """Fail fast, before any work, when the tracking URI cannot be used. Returns the URI.

    Raises:
        EnvironmentProblem: naming the URI and why it cannot be used.
    """
    uri = tracking_uri(cfg, home)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnvironmentProblem(
                f"MLflow database {db}: cannot create its directory: {exc.strerror}"
            ) from None
        if not os.access(db.parent, os.W_OK):
            raise EnvironmentProblem(f"MLflow database {db}: directory is not writable")
        return uri
    if uri.startswith(("http://", "https://")):
        import httpx

        try:
            resp = httpx.get(uri.rstrip("/") + "/health", timeout=5.0)
        except httpx.HTTPError as exc:
            raise EnvironmentProblem(
                f"MLflow tracking server {uri} is unreachable ({type(exc).__name__}: {exc}); "
                "start it or set mlflow.tracking_uri / MLFLOW_TRACKING_URI"
            ) from None
        if resp.status_code >= 400:
            raise EnvironmentProblem(
                f"MLflow tracking server {uri} answered HTTP {resp.status_code} on /health"
            )
        return uri
    if uri.startswith("file:") or "://" not in uri:
        raise EnvironmentProblem(
            f"MLflow tracking URI {uri!r}: file stores are not supported by MLflow 3; "
            "use sqlite:///path/mlflow.db or a tracking server"
        )
    return uri


def connect(cfg: LaunchbayConfig, home: Home) -> tuple[MlflowClient, str]:
    """Point MLflow at the configured store; ensure the experiment exists. Returns (client, experiment id)."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(cfg, home)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name(cfg.experiment_name)
    if exp is not None:
        return client, exp.experiment_id
    # Only the embedded store gets an artefact root of ours; a server decides its own.
    location = home.artifacts.as_uri() if uri.startswith("sqlite:///") else None
    try:
        return client, client.create_experiment(cfg.experiment_name, artifact_location=location)
    except Exception:  # created concurrently by another step: use that one
        exp = client.get_experiment_by_name(cfg.experiment_name)
        if exp is None:
            raise
        return client, exp.experiment_id


def alias_version(client: MlflowClient, name: str, alias: str) -> Any | None:
    """The model version an alias points at, or None (no such model or alias)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def registry_state(client: MlflowClient, name: str) -> dict[str, Any]:
    """Champion and challenger of a registered model with their key metrics (for `status`)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return {"model": name, "registered": False, "versions": 0, "aliases": {}}
    versions = client.search_model_versions(f"name='{name}'")
    state: dict[str, Any] = {"model": name, "registered": True, "versions": len(versions), "aliases": {}}
    for alias in (CHAMPION, CHALLENGER):
        if alias not in (model.aliases or {}):
            continue
        mv = client.get_model_version(name, model.aliases[alias])
        metrics: dict[str, float] = {}
        if mv.run_id:
            try:
                run_metrics = client.get_run(mv.run_id).data.metrics
            except MlflowException:
                run_metrics = {}
            metrics = {
                k.removeprefix("test_"): v
                for k, v in run_metrics.items()
                if k in {"test_roc_auc", "test_precision", "test_recall", "test_pr_auc"}
            }
        state["aliases"][alias] = {
            "version": mv.version,
            "run_id": mv.run_id,
            "created": mv.creation_timestamp,
            "git_commit": (mv.tags or {}).get("launchbay.git_commit"),
            "data_digest": (mv.tags or {}).get("launchbay.data_digest"),
            "metrics": metrics,
        }
    return state
