"""`launchbay.yaml`, parsed into typed models.

Every mistake in the file is reported as one `ConfigError` naming the file, the key path and what
was expected (`launchbay.yaml: gates.min_auc: expected a number <= 1, got 1.7`). Unknown keys are
errors, never silently ignored: a typo such as `min_acu` must not quietly disable a gate.
Relative paths in the file are resolved against the file's own directory, so a pipeline behaves
the same whatever directory it is started from.

The file is validated whole, here, so that one mistake anywhere is named before anything runs;
its sections live beside each other by who reads them -- `model` (the model, its data, its gates:
checks and pipelines), `serving`, `rollout` (and notifications), `cluster` (Argo, Kubernetes,
Cloud Run, Lambda), `advise` -- on a `base` of strict models, durations and names. A module
imports the section it reads from its own module, and `LaunchbayConfig` from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from launchbay.config.advise import AdviseSection
from launchbay.config.base import Section
from launchbay.config.cluster import ArgoSection, CloudRunSection, FunctionSection, KubernetesSection
from launchbay.config.freeze import FreezeWindow
from launchbay.config.model import (
    TASK_GATES,
    TASK_METRICS,
    DataSection,
    GatesSection,
    MlflowSection,
    ModelSection,
    SigningSection,
)
from launchbay.config.monitor import MonitorSection
from launchbay.config.rollout import NotificationsSection, RolloutSection
from launchbay.config.serving import ServingSection
from launchbay.errors import ConfigError

DEFAULT_CONFIG = "launchbay.yaml"


CONFIG_ENV = "LAUNCHBAY_CONFIG"


class LaunchbayConfig(Section):
    """The whole `launchbay.yaml`."""

    model: ModelSection
    data: DataSection
    gates: GatesSection = GatesSection()
    mlflow: MlflowSection = MlflowSection()
    argo: ArgoSection = ArgoSection()
    signing: SigningSection = SigningSection()
    serving: ServingSection = ServingSection()
    rollout: RolloutSection = RolloutSection()
    kubernetes: KubernetesSection = KubernetesSection()
    function: FunctionSection = FunctionSection()
    cloud_run: CloudRunSection = CloudRunSection()
    advise: AdviseSection = AdviseSection()
    notifications: NotificationsSection = NotificationsSection()
    monitor: MonitorSection | None = None
    """Production monitoring of the champion (off unless present)."""
    freeze: list[FreezeWindow] = Field(default_factory=list)
    """Change-freeze windows (RFC 5545 rules): no release starts, advances or is promoted inside
    one; rollback always works. `launchbay freeze on` adds an emergency freeze."""

    # Set by `load_config`, not by the file: where the file was read from.
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _freeze_names_distinct(self) -> LaunchbayConfig:
        names = [w.name for w in self.freeze]
        if len(set(names)) != len(names):
            raise ValueError(f"freeze: window names must differ (got {', '.join(names)})")
        return self

    @model_validator(mode="after")
    def _monitor_retrains_safely(self) -> LaunchbayConfig:
        m = self.monitor
        if m is None or not m.retrain.on:
            return self
        if not self.rollout.approval.required:
            # A retrain nobody asked for must not reach every user by itself.
            raise ValueError("monitor.retrain starts releases nobody asked for: it needs "
                             "rollout.approval.required: true (or monitor.retrain.on: [])")
        if self.rollout.target != "local" and m.store is None:
            raise ValueError(
                "monitor.retrain in a cluster needs monitor.store (an s3:// or other fsspec URL the "
                "controller and the Argo workflow share), or monitor.retrain.on: []"
            )
        kept = set(self.data.features) if m.capture.fields == "all" else set(m.capture.fields)
        missing = sorted((set(self.data.features) - kept) | (set(m.capture.hash) & set(self.data.features)))
        if missing:
            raise ValueError(f"monitor.retrain trains on captured rows, which lack {', '.join(missing)} "
                             "(monitor.capture.fields / hash); or set monitor.retrain.on: []")
        return self

    @model_validator(mode="after")
    def _columns_distinct(self) -> LaunchbayConfig:
        if self.data.target in self.data.features:
            raise ValueError(f"target column {self.data.target!r} is also listed as a feature")
        return self

    @model_validator(mode="after")
    def _gates_fit_task(self) -> LaunchbayConfig:
        # A floor the task has no metric for would silently gate nothing: name it instead.
        task = self.model.task
        for key in sorted(self.gates.model_fields_set):
            if key in TASK_GATES and task not in TASK_GATES[key]:
                raise ValueError(
                    f"gates.{key} does not apply to a {task} model (model.task); "
                    f"its metrics are {', '.join(TASK_METRICS[task])}"
                )
        for metric in self.gates.vs_champion or ():
            if metric not in TASK_METRICS[task]:
                raise ValueError(
                    f"gates.vs_champion: {metric} is not a metric of a {task} model; "
                    f"expected some of {', '.join(TASK_METRICS[task])}"
                )
        return self

    @property
    def champion_metrics(self) -> tuple[str, ...]:
        """The metrics compared with the champion (configured, or the task's headline metric)."""
        if self.gates.vs_champion is not None:
            return tuple(self.gates.vs_champion)
        return ("rmse",) if self.model.task == "regression" else ("roc_auc",)

    def code_paths(self) -> list[Path]:
        """The user's own code shipped with the model: `model.code`, else the module of `train`."""
        if self.model.code is not None:
            return [Path(self.resolve_path(p)) for p in self.model.code]
        top = self.model.train.partition(":")[0].split(".")[0]
        return [p for p in (self.base_dir / top, self.base_dir / f"{top}.py") if p.exists()]

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in the file are resolved against."""
        return self.source.parent if self.source else Path.cwd()

    def public_key(self, value: str) -> bytes:
        """A public key given in the file as PEM text or as a path (relative to the file).

        Raises:
            ConfigError: the file cannot be read.
        """
        if value.lstrip().startswith("-----BEGIN"):
            return value.encode()
        path = Path(self.resolve_path(value))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{self.source or DEFAULT_CONFIG}: public key {path}: {exc.strerror}") from None

    def resolve_path(self, value: str) -> str:
        """Resolve a path from the file (relative to the file) unless it is a URI."""
        if "://" in value:
            return value
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())

    @property
    def experiment_name(self) -> str:
        """MLflow experiment that runs of this model are recorded in."""
        return self.mlflow.experiment or self.model.name


def config_path(explicit: str | Path | None) -> Path:
    """The config file to use: the explicit one, `$LAUNCHBAY_CONFIG`, or `./launchbay.yaml`."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: str | Path | None = None) -> LaunchbayConfig:
    """Read and validate a config file.

    Raises:
        ConfigError: naming the file, the key path and what was expected.
    """
    file = config_path(path)
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: config file not found (pass --config PATH or create {DEFAULT_CONFIG})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping of sections (model, data, ...), got {_kind(raw)}")
    try:
        cfg = LaunchbayConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(file, exc)) from None
    return cfg.model_copy(update={"source": file.resolve()})


def format_validation_error(file: Path, exc: ValidationError) -> str:
    """Turn pydantic's errors into lines of `file: key.path: expected ..., got ...`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1])
            hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
            lines.append(f"{file}: {loc}: unknown key{hint}")
            continue
        if kind == "missing":
            lines.append(f"{file}: {loc}: required key is missing")
            continue
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Input should be ")
        if not msg.startswith("expected"):
            msg = f"expected {msg}"
        lines.append(f"{file}: {loc}: {msg}, got {err.get('input')!r}")
    return "\n".join(lines)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the section at `loc`, to suggest the right spelling of an unknown key."""
    model: Any = LaunchbayConfig
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    fields = getattr(model, "model_fields", {})
    return [name for name, f in fields.items() if not f.exclude]


def _kind(value: Any) -> str:
    return "an empty file" if value is None else f"a {type(value).__name__}"
