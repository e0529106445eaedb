"""The model registry: MLflow behind one small protocol, used by every package.

Everything that names a model version goes through here: `MODEL@REF` is parsed and resolved once
(`project_version`), versions are downloaded as the files that were signed, and aliases
(`champion`, `challenger`) and tags are moved by the same calls whether the pipeline, the rollout,
the service's packaging or the CLI asks.

The embedded default is SQLite under the state directory with artefacts beside it; any MLflow
URI (an `http(s)://` tracking server, a database URL) given in `mlflow.tracking_uri` or
`$MLFLOW_TRACKING_URI` is honoured instead. MLflow is imported on first use only: reading the
ledger or the config never pays for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem, UsageError
from launchbay.home import Home

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
"""The alias of the version serving users."""
CHALLENGER = "challenger"
"""The alias of the newest version that passed the gates."""


@dataclass(frozen=True)
class ModelRef:
    """`MODEL@REF`: a registered model and a version number or an alias."""

    model: str
    ref: str

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Split `MODEL@REF`.

        Raises:
            UsageError: the text is not of that form.
        """
        name, sep, ref = text.partition("@")
        if not sep or not name or not ref:
            raise UsageError(f"{text!r}: expected MODEL@VERSION or MODEL@ALIAS, e.g. fraud-detector@champion")
        return cls(name, ref)

    def __str__(self) -> str:
        return f"{self.model}@{self.ref}"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, as launchbay needs to know it."""

    model: str
    version: str
    source: str
    """Artefact URI of the logged model (`models:/m-...`): what `download` fetches."""
    model_id: str
    """The logged model behind the version (MLflow 3)."""
    run_id: str | None = None
    created_ms: int | None = None
    tags: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class RunArtifacts(Protocol):
    """Optional capability: the artefacts a version's run logged (the monitoring reference)."""

    def run_text(self, run_id: str, path: str) -> str | None:
        """A text artefact of a run (None: the run logged none there)."""
        ...


class Registry(Protocol):
    """What launchbay asks of a model registry."""

    def resolve(self, ref: ModelRef) -> ModelVersion:
        """The version a number or an alias names (UsageError when there is none)."""
        ...

    def download(self, version: ModelVersion, dst: Path) -> Path:
        """Download the version's model directory (as signed) into `dst`; return its path."""
        ...

    def alias(self, model: str, alias: str) -> str | None:
        """The version an alias points at, or None."""
        ...

    def set_alias(self, model: str, alias: str, version: str) -> None:
        """Point an alias at a version (idempotent)."""
        ...

    def tag(self, model: str, version: str, key: str, value: str) -> None:
        """Set a tag on a version."""
        ...


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
    """Point MLflow at the configured store; ensure the experiment exists. Returns (client, experiment id).

    The pipeline's steps log runs and models through MLflow's own API; this is their one way in.
    """
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


class MlflowRegistry:
    """The MLflow registry configured for this project (checked and connected on first use)."""

    def __init__(self, cfg: LaunchbayConfig, home: Home) -> None:
        self.cfg, self.home = cfg, home
        self._client: MlflowClient | None = None
        self._experiment_id = ""

    @property
    def client(self) -> MlflowClient:
        """MLflow's own client, for what only MLflow does (runs, logged models)."""
        if self._client is None:
            preflight(self.cfg, self.home)
            self._client, self._experiment_id = connect(self.cfg, self.home)
        return self._client

    @property
    def experiment_id(self) -> str:
        """The experiment this project's runs are recorded in."""
        _ = self.client
        return self._experiment_id

    # -- the Registry protocol --------------------------------------------------------------

    def resolve(self, ref: ModelRef) -> ModelVersion:
        """The version a number or an alias names.

        Raises:
            UsageError: no such model, version or alias.
        """
        from mlflow.exceptions import MlflowException

        try:
            if ref.ref.isdigit():
                mv = self.client.get_model_version(ref.model, ref.ref)
            else:
                mv = self.client.get_model_version_by_alias(ref.model, ref.ref)
        except MlflowException:
            raise UsageError(f"{ref}: no such model version or alias in the registry") from None
        return _version(mv)

    def download(self, version: ModelVersion, dst: Path) -> Path:
        """Download a version's model directory (model files, serving.json, provenance, signature)."""
        import mlflow

        _ = self.client  # the tracking URI must be set before MLflow resolves `models:/`
        dst.mkdir(parents=True, exist_ok=True)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(dst)))

    def alias(self, model: str, alias: str) -> str | None:
        """The version an alias points at, or None (no such model or alias)."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(model, alias).version)
        except MlflowException:
            return None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        """Point an alias at a version (idempotent)."""
        self.client.set_registered_model_alias(model, alias, str(version))

    def tag(self, model: str, version: str, key: str, value: str) -> None:
        """Set a tag on a version."""
        self.client.set_model_version_tag(model, str(version), key, value)

    def run_text(self, run_id: str, path: str) -> str | None:
        """A text artefact of a run (None: the run logged none there)."""
        import tempfile

        from mlflow.exceptions import MlflowException

        try:
            with tempfile.TemporaryDirectory(prefix="launchbay-artefact-") as tmp:
                return Path(self.client.download_artifacts(run_id, path, tmp)).read_text()
        except (MlflowException, OSError):
            return None

    # -- conveniences -----------------------------------------------------------------------

    def get(self, model: str, version: str) -> ModelVersion:
        """A version by number (UsageError when it does not exist)."""
        return self.resolve(ModelRef(model, str(version)))

    def state(self, model: str, fast: bool = True) -> dict[str, Any]:
        """Champion and challenger with their held-out metrics (for `status`).

        Args:
            fast: read the embedded SQLite store directly when that is the store in use.
        """
        uri = tracking_uri(self.cfg, self.home)
        if fast and uri.startswith("sqlite:///"):
            quick = sqlite_state(Path(uri.removeprefix("sqlite:///")), model)
            if quick is not None:
                return quick
        from mlflow.exceptions import MlflowException

        client = self.client
        try:
            registered = client.get_registered_model(model)
        except MlflowException:
            return {"model": model, "registered": False, "versions": 0, "aliases": {}}
        versions = client.search_model_versions(f"name='{model}'")
        state: dict[str, Any] = {"model": model, "registered": True, "versions": len(versions), "aliases": {}}
        for alias in (CHAMPION, CHALLENGER):
            if alias not in (registered.aliases or {}):
                continue
            mv = _version(client.get_model_version(model, registered.aliases[alias]))
            run_metrics: dict[str, float] = {}
            params: dict[str, str] = {}
            if mv.run_id:
                try:
                    run = client.get_run(mv.run_id)
                    run_metrics, params = dict(run.data.metrics), dict(run.data.params)
                except MlflowException:
                    pass
            state["aliases"][alias] = _alias_entry(
                int(mv.version), mv.run_id, mv.created_ms, mv.tags, run_metrics, params
            )
        state["comparison"] = comparison(state["aliases"])
        return state


def _alias_entry(
    version: int,
    run_id: str | None,
    created: int | None,
    tags: dict[str, str],
    run_metrics: dict[str, float],
    params: dict[str, str],
) -> dict[str, Any]:
    """One alias of `state`: the version, where it came from, and its run's held-out metrics --
    its own (`test_*`) and the champion of that moment measured on the same rows
    (`champion_test_*`), when there was one."""
    return {
        "version": version,  # a number in `status --json`, as MLflow numbers them
        "run_id": run_id,
        "created": created,
        "git_commit": tags.get("launchbay.git_commit"),
        "data_digest": tags.get("launchbay.data_digest"),
        "metrics": {k.removeprefix("test_"): v for k, v in run_metrics.items() if k.startswith("test_")},
        "heldout_digest": params.get("data.heldout_digest"),
        "champion_on_same_rows": {
            k.removeprefix("champion_test_"): v
            for k, v in run_metrics.items()
            if k.startswith("champion_test_")
        },
    }


def sqlite_state(db: Path, model: str) -> dict[str, Any] | None:
    """`MlflowRegistry.state` read straight from the embedded SQLite store, without importing
    MLflow (which alone takes ~1.5 s): `status` answers in well under a second. Read-only, on the
    tables of the pinned MLflow (3.17); None when the file or a table is not what is expected, and
    the caller asks MLflow instead. A test holds both answers equal."""
    import sqlite3

    if not db.is_file():  # nothing was ever tracked here (and asking MLflow would create it)
        return {"model": model, "registered": False, "versions": 0, "aliases": {}}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        one = con.execute("SELECT name FROM registered_models WHERE name = ?", (model,)).fetchone()
        if one is None:
            return {"model": model, "registered": False, "versions": 0, "aliases": {}}
        (count,) = con.execute("SELECT count(*) FROM model_versions WHERE name = ?", (model,)).fetchone()
        state: dict[str, Any] = {"model": model, "registered": True, "versions": count, "aliases": {}}
        aliases = dict(
            con.execute("SELECT alias, version FROM registered_model_aliases WHERE name = ?", (model,))
        )
        for alias in (CHAMPION, CHALLENGER):
            if alias not in aliases:
                continue
            version = aliases[alias]
            created, run_id = con.execute(
                "SELECT creation_time, run_id FROM model_versions WHERE name = ? AND version = ?",
                (model, version),
            ).fetchone()
            tags = dict(
                con.execute(
                    "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?",
                    (model, version),
                )
            )
            run_metrics = dict(
                con.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,))
            )
            params = dict(con.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)))
            state["aliases"][alias] = _alias_entry(
                int(version), run_id or None, created, tags, run_metrics, params
            )
    except sqlite3.Error:
        return None
    finally:
        con.close()
    state["comparison"] = comparison(state["aliases"])
    return state


def comparison(aliases: dict[str, Any]) -> dict[str, Any] | None:
    """Whether champion and challenger can be compared, and on which numbers.

    Each version's own metrics come from its own run's held-out rows; they compare only when the
    rows were the same (equal digests). Otherwise the challenger's run measured the champion of
    its day on its own rows, which is the comparison the gate made.
    """
    champ, chall = aliases.get(CHAMPION), aliases.get(CHALLENGER)
    if champ is None or chall is None or champ["version"] == chall["version"]:
        return None
    same = champ["heldout_digest"] is not None and champ["heldout_digest"] == chall["heldout_digest"]
    if same:
        return {"same_rows": True, "champion": champ["metrics"], "challenger": chall["metrics"]}
    if chall["champion_on_same_rows"]:
        return {
            "same_rows": True,
            "champion": chall["champion_on_same_rows"],
            "challenger": chall["metrics"],
            "note": "the champion as the model gate measured it on the challenger's held-out rows",
        }
    return {"same_rows": False, "note": "measured on different held-out rows: not comparable"}


def project_version(registry: Registry, cfg: LaunchbayConfig, text: str) -> ModelVersion:
    """Resolve `MODEL@REF` naming this project's model (the one way every command does it).

    Raises:
        UsageError: malformed, another project's model, or no such version or alias.
    """
    ref = ModelRef.parse(text)
    if ref.model != cfg.model.name:
        raise UsageError(f"{text}: this project's model is {cfg.model.name}")
    return registry.resolve(ref)


def champion(registry: Registry, model: str) -> str | None:
    """The version serving users according to the registry, or None."""
    return registry.alias(model, CHAMPION)


def _version(mv: Any) -> ModelVersion:
    source = str(mv.source)
    model_id = getattr(mv, "model_id", None) or source.removeprefix("models:/").split("/")[0]
    return ModelVersion(
        model=str(mv.name),
        version=str(mv.version),
        source=source,
        model_id=str(model_id),
        run_id=mv.run_id or None,
        created_ms=mv.creation_timestamp,
        tags=dict(mv.tags or {}),
    )
