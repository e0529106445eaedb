"""`launchbay.yaml`, parsed into typed models.

Every mistake in the file is reported as one `ConfigError` naming the file, the key path and what
was expected (`launchbay.yaml: gates.min_auc: expected a number <= 1, got 1.7`). Unknown keys are
errors, never silently ignored: a typo such as `min_acu` must not quietly disable a gate.
Relative paths in the file are resolved against the file's own directory, so a pipeline behaves
the same whatever directory it is started from.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from launchbay.errors import ConfigError

DEFAULT_CONFIG = "launchbay.yaml"
CONFIG_ENV = "LAUNCHBAY_CONFIG"

_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def valid_name(name: str) -> bool:
    """Whether `name` can name a model (a DNS label: it names services and routes later)."""
    return bool(_NAME.match(name))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """One input column of the model: its kind and the values the data gate accepts."""

    type: Literal["float", "int", "category", "bool"]
    min: float | None = None
    max: float | None = None
    values: list[str] | None = Field(default=None, description="allowed values of a category")
    nullable: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        if self.type == "category" and not self.values:
            raise ValueError("a category feature needs `values`: the list of allowed categories")
        if self.type != "category" and self.values is not None:
            raise ValueError("`values` applies only to features of type category")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is greater than `max` ({self.max})")
        return self


Task = Literal["binary", "multiclass", "regression"]
"""What the model predicts: one of two classes, one of several, or a number."""


class ModelSection(_Strict):
    """Which model this is and how to train it."""

    name: str = Field(description="registered model name")
    train: str = Field(description="training function as module:function")
    task: Task = Field(
        default="binary", description="binary | multiclass (classification) or regression"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    code: list[str] | None = Field(
        default=None,
        description="your own modules and packages the trained model imports (paths beside this "
        "file), shipped inside the Bento; default: the module of `train`",
    )
    requirements: list[str] = Field(
        default_factory=list,
        description="extra pip requirements of the served model (e.g. xgboost-cpu==3.2.*)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                "expected lower-case letters, digits and '-' (a DNS label: it names services later)"
            )
        return v

    @field_validator("train")
    @classmethod
    def _entrypoint(cls, v: str) -> str:
        if not _ENTRYPOINT.match(v):
            raise ValueError("expected 'package.module:function'")
        return v


class DataSection(_Strict):
    """The training data, its reference for drift, and its schema."""

    path: str = Field(description="CSV or Parquet file (or any URI pandas can read)")
    reference: str | None = Field(default=None, description="reference data for drift checks")
    target: str = "label"
    id_column: str | None = Field(default=None, description="column whose values must be unique")
    features: dict[str, FeatureSpec]
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.25
    split_seed: int = 42
    min_rows: Annotated[int, Field(ge=1)] = 100

    @field_validator("features")
    @classmethod
    def _non_empty(cls, v: dict[str, FeatureSpec]) -> dict[str, FeatureSpec]:
        if not v:
            raise ValueError("expected at least one feature")
        return v


class DriftSection(_Strict):
    """Drift of each feature between the reference data and the new data: a feature has drifted
    when its PSI is over `threshold` (a move that matters) *and* beyond sampling noise at the two
    samples' sizes (resampled p-value under the family-wise level `1 - confidence`, split across
    the features)."""

    metric: Literal["psi"] = "psi"
    threshold: Annotated[float, Field(gt=0)] = 0.2
    bins: Annotated[int, Field(ge=2, le=100)] = 10
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.99
    """Chance that data from the reference's own distribution raises no drift alarm at all."""
    resamples: Annotated[int, Field(ge=100, le=100_000)] = 2000


GateMetric = Literal["roc_auc", "precision", "recall", "f1", "accuracy", "rmse", "mae", "r2"]

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "precision", "recall", "f1"),
    "multiclass": ("roc_auc", "precision", "recall", "f1", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
"""The held-out metrics each task is judged by (multiclass: macro averages)."""

_TASK_GATES = {
    "min_auc": ("binary", "multiclass"),
    "min_precision": ("binary", "multiclass"),
    "min_recall": ("binary", "multiclass"),
    "min_f1": ("binary", "multiclass"),
    "decision_threshold": ("binary",),
    "max_rmse": ("regression",),
    "max_mae": ("regression",),
    "min_r2": ("regression",),
}


class GatesSection(_Strict):
    """Thresholds of the data and model gates."""

    max_null_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    drift: DriftSection = DriftSection()
    min_auc: Annotated[float, Field(ge=0, le=1)] = 0.8
    min_precision: Annotated[float, Field(ge=0, le=1)] = 0.0
    min_recall: Annotated[float, Field(ge=0, le=1)] = 0.0
    min_f1: Annotated[float, Field(ge=0, le=1)] = 0.0
    decision_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """binary: the score at or above which the positive class is predicted."""
    max_rmse: Annotated[float, Field(gt=0)] | None = None
    max_mae: Annotated[float, Field(gt=0)] | None = None
    min_r2: Annotated[float, Field(le=1)] | None = None
    vs_champion: list[GateMetric] | None = Field(
        default=None,
        description="metrics the candidate must not lose against the champion on the same rows; "
        "default: roc_auc (classification), rmse (regression)",
    )
    max_regression_vs_champion: Annotated[float, Field(ge=0, le=1)] = 0.01
    """Allowed loss vs the champion: absolute for scores in [0, 1] (AUC, F1, R²), relative for
    errors (0.01: RMSE or MAE at most 1% above the champion's)."""


class MlflowSection(_Strict):
    """Where runs and models are tracked."""

    tracking_uri: str | None = Field(
        default=None,
        description="any MLflow URI; default: $MLFLOW_TRACKING_URI, else SQLite under LAUNCHBAY_HOME",
    )
    experiment: str | None = Field(default=None, description="default: the model name")


_K8S_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# A Kubernetes resource quantity as people write them ("500m", "2", "1.5Gi"): checked here so a
# typo is named in launchbay.yaml, not refused later by the API server or Argo.
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
Quantity = Annotated[str, Field(pattern=_QUANTITY)]


class ArgoSection(_Strict):
    """How the workflow is rendered for and submitted to Argo Workflows (and what its pods get)."""

    image: str = "ghcr.io/launchbay/launchbay:0.1.0"
    namespace: Annotated[str, Field(pattern=_K8S_NAME)] = "argo"
    service_account: Annotated[str, Field(pattern=_K8S_NAME)] | None = "launchbay"
    config_path: str = Field(
        default="launchbay.yaml", description="path of this config file inside the image"
    )
    settings_secret: Annotated[str, Field(pattern=_K8S_NAME)] | None = Field(
        default="launchbay-settings",
        description="Secret (in the workflow's namespace) whose keys become every step's environment: "
        "MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME/PASSWORD or _TOKEN, LAUNCHBAY_LEDGER_URL, "
        "LAUNCHBAY_PROMETHEUS_TOKEN, ...; null: none",
    )
    signing_key_secret: Annotated[str, Field(pattern=_K8S_NAME)] = Field(
        default="launchbay-signing-key",
        description="Secret with signing-key.pem, mounted into the sign step only",
    )
    cpu_request: Quantity = "500m"
    cpu_limit: Quantity = "2"
    memory_request: Quantity = "1Gi"
    memory_limit: Quantity = "4Gi"
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Retries of a step that failed for a transient reason (evicted pod, lost node), never of a
    step that failed on its own (a gate that said no)."""
    keep_succeeded: Annotated[int, Field(ge=0)] = 86_400
    """Seconds a succeeded workflow is kept (its pods are deleted when it succeeds)."""
    keep_failed: Annotated[int, Field(ge=0)] = 7 * 86_400
    """Seconds a failed workflow and its pods are kept, to read their logs."""


class SigningSection(_Strict):
    """Which key signs models, and which public keys a deployment trusts."""

    private_key: str | None = Field(
        default=None,
        description="default: $LAUNCHBAY_SIGNING_KEY (path or PEM text), else keys/ in LAUNCHBAY_HOME",
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="public key paths; default: $LAUNCHBAY_TRUSTED_KEYS (':'-separated), else the local key",
    )


def _seconds(value: object) -> float:
    """Accept 30, 1.5, "500ms", "30s", "2m", "1h" and return seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 2m or 500ms")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value))
        if not m:
            raise ValueError("expected a duration such as 30s, 2m or 500ms")
        seconds = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[m.group(2)]
    if seconds <= 0:
        raise ValueError("expected a positive duration")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(_seconds),
    # What the file may say (the JSON Schema editors check it with), not the seconds it becomes.
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
            ],
            "description": "seconds, or a duration such as 500ms, 30s, 2m, 1h",
        }
    ),
]


class OnnxSection(_Strict):
    """The ONNX variant made at sign time and served where it matches the native model."""

    enabled: bool = True
    """Convert the model to ONNX (skl2onnx; onnxmltools for XGBoost/LightGBM) when it converts."""
    tolerance: Annotated[float, Field(gt=0, le=0.1)] = 1e-5
    """Largest difference of any class score (a regressor: of the value, relative to max(1,
    |value|)) from the native model's on the held-out rows; the predicted classes must agree too."""


class ServingSection(_Strict):
    """How the model's HTTP service behaves."""

    runtime: Literal["auto", "bentoml", "lean"] = "auto"
    """Which server runs a version on the local target: `bentoml` (the Bento's BentoML service),
    `lean` (uvicorn + the ONNX variant, or the native model, with the same API, schema, metrics
    and signature check: it starts in well under a second and keeps 95% of the leanest Python
    stack's throughput, where BentoML keeps 17% with a 10x p99) or `auto`: lean, unless
    `workers` asks for more than one process per server (BentoML's)."""
    onnx: OnnxSection = OnnxSection()

    max_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 64
    """Most rows accepted in one request, and most rows scored in one model call."""
    batch_wait_ms: Annotated[float, Field(ge=0, le=1000)] = 2.0
    """How long a request may wait for others to share a model call (adaptive batching)."""
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    min_instances: Annotated[int, Field(ge=0, le=1)] = 1
    """0: the local target stops a version's server after `idle_timeout` without requests and
    cold-starts it on the next one (scale to zero)."""
    idle_timeout: Duration = 300.0
    cold_start_timeout: Duration = 60.0
    """How long a request waits for a cold start before it gets 503 with Retry-After."""
    measure: bool = False
    """Add a `measure` step after `package`: cold start, latency under load, throughput within the
    p95 SLO, memory and size of each candidate (what `launchbay advise` decides with); ~25 s."""

    @property
    def server(self) -> Literal["bentoml", "lean"]:
        """The runtime a local server of this config runs (`runtime`, with `auto` resolved)."""
        if self.runtime == "auto":
            return "lean" if self.workers == 1 else "bentoml"
        return self.runtime


class ShadowSection(_Strict):
    """Mirror live traffic to the candidate and compare its answers before it gets real traffic."""

    duration: Duration = 30.0
    max_disagreement: Annotated[float, Field(ge=0, le=1)] = 0.02
    """Largest share of mirrored rows whose predicted class may differ from stable's (classification)."""
    max_score_shift: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Largest mean difference between candidate and stable scores (binary: of the positive
    class's probability; multiclass: half the L1 distance between the class distributions)."""
    max_relative_difference: Annotated[float, Field(ge=0, le=2)] = 0.1
    """Regression: largest mean relative difference |c - s| / max(|c|, |s|) between the values."""


class SloSection(_Strict):
    """Service-level objectives a canary must meet, absolute and relative to stable."""

    p95_latency_ms: Annotated[float, Field(gt=0)] = 50.0
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_p95_ratio_vs_stable: Annotated[float, Field(ge=1)] = 1.3
    max_error_ratio_vs_stable: Annotated[float, Field(ge=1)] = 2.0
    when_stable_breaks: Literal["hold", "fail"] = "hold"
    """An absolute SLO that stable breaks too in the same window (a loaded machine): hold the step,
    or fail the candidate anyway."""


class ApprovalSection(_Strict):
    """Who may promote a release (never its author: four eyes), each proven by their own key."""

    required: bool = True
    approvers: dict[str, str] = Field(
        default_factory=dict,
        description="release managers, each with the public key (path or PEM) their approvals verify with",
    )
    workflows: dict[str, str] = Field(
        default_factory=dict,
        description="CI identities that approve for a reviewer their platform checked (GitHub "
        "environments), each with its public key",
    )

    @field_validator("approvers", "workflows", mode="before")
    @classmethod
    def _keyed(cls, v: object) -> object:
        if isinstance(v, list):
            names = ", ".join(map(str, v)) or "..."
            raise ValueError(
                "expected each approver with the public key their approvals are verified with, e.g. "
                f"{{alice: approvers/alice.pub}}, got only names ({names}); make a key pair with "
                "`launchbay keys approver NAME`"
            )
        return v

    @model_validator(mode="after")
    def _someone(self) -> ApprovalSection:
        if self.required and not self.approvers:
            raise ValueError("approval is required but `approvers` is empty: name who may approve")
        return self


class QueriesSection(_Strict):
    """PromQL templates of the analysis (like Flagger's metric templates); None: launchbay's default
    over its gateway's metrics. Placeholders: {version} {role} {window} (e.g. `10s`), and for the
    shadow comparison {stable} {candidate}. Each must aggregate to one number."""

    requests: str | None = None
    error_rate: str | None = None
    p95_ms: str | None = None
    compared: str | None = None
    disagreement: str | None = None
    score_shift: str | None = None


class AnalysisStep(_Strict):
    """An analysis step: measured every interval over the analysis window for `duration`; it
    advances on a PASS after its duration."""

    duration: Duration
    failure_limit: Annotated[int, Field(ge=0)] = 0
    """FAILs tolerated in this step before the rollback (0: the first FAIL rolls back)."""
    inconclusive_limit: Annotated[int, Field(ge=1)] | None = None
    """INCONCLUSIVE analyses in a row tolerated before the rollback (None: wait as long as it takes)."""
    window: Duration | None = None
    """The sliding window this analysis measures over (default: rollout.analysis_window)."""
    metrics: list[str] | None = None
    """Which of rollout.metrics this analysis judges (default: all of them; [] for none)."""


class StepSpec(_Strict):
    """One explicit rollout step (like Argo Rollouts' canary steps): exactly one of the keys."""

    set_weight: Annotated[int, Field(gt=0, le=100)] | None = None
    pause: Duration | None = None
    """Hold the weight this long (still watched: a FAIL rolls back), then go on."""
    analysis: AnalysisStep | None = None
    approval: Literal[True] | None = None

    @model_validator(mode="after")
    def _one(self) -> StepSpec:
        given = [k for k in ("set_weight", "pause", "analysis", "approval") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "expected exactly one of set_weight, pause, analysis, approval in each step, "
                f"got {', '.join(given) or 'none'}"
            )
        return self


_PLACEHOLDER = re.compile(r"\{(version|window)\}")


class MetricSection(_Strict):
    """A metric of your own, judged at every canary analysis (like Flagger's MetricTemplate or
    Argo Rollouts' AnalysisTemplate): a PromQL query and its success condition."""

    query: str = Field(
        description="PromQL giving one number; {version} (the version measured) and {window} "
        "(e.g. 10s) are filled in, every other brace is PromQL's"
    )
    compare: Literal["absolute", "relative"] = Field(
        default="absolute",
        description="absolute: the candidate's value within [min, max]; relative: the candidate's "
        "value divided by stable's over the same window within [min, max]",
    )
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _condition(self) -> MetricSection:
        if self.min is None and self.max is None:
            raise ValueError("a metric needs its success condition: `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is greater than `max` ({self.max})")
        if "{version}" not in self.query:
            raise ValueError("the query must select the version it measures with {version}")
        return self

    def filled(self, version: str, window: str) -> str:
        """The query for one version over one window."""
        values = {"version": version, "window": window}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.query)


class RolloutSection(_Strict):
    """How a registered model reaches users: shadow, canary steps, approval, rollback."""

    target: Literal["local", "kubernetes", "knative", "function"] = "local"
    shadow: ShadowSection | None = ShadowSection()
    steps: list[Annotated[int, Field(gt=0, lt=100)]] | list[StepSpec] = Field(
        default_factory=lambda: [5, 25, 50],
        description="canary weights (each followed by an analysis of analysis_window), or explicit "
        "steps: set_weight, pause, analysis {duration, failure_limit, inconclusive_limit, window, "
        "metrics}, approval",
    )
    interval: Duration = 2.0
    """How often the controller measures and decides."""
    analysis_window: Duration = 10.0
    """How long each canary step is measured before moving on."""
    min_samples: Annotated[int, Field(ge=1)] = 50
    """Fewer requests than this in a window: the step waits (no data is not a pass)."""
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    """Error rates and disagreement blame the candidate only when an anytime-valid bound at this
    confidence clears the limit (a few unlucky rows wait for more instead)."""
    max_consecutive_errors: Annotated[int, Field(ge=1)] = 3
    """Metric queries failing this many times in a row roll the release back."""
    grace_period: Duration = 300.0
    """How long the previous stable stays warm after a promotion (instant rollback)."""
    start_timeout: Duration = 120.0
    """A candidate not ready after this long is marked failed (it never gets traffic)."""
    hedge_factor: Annotated[float, Field(ge=1, le=100)] = 4.0
    hedge_floor: Duration = 0.5
    """Local gateway: a canary (or mirrored) request not answered within hedge_factor x stable's
    recent p99 (at least hedge_floor) is answered by stable and counts as the candidate's failure:
    a hung candidate costs each client one short wait."""
    slo: SloSection = SloSection()
    approval: ApprovalSection = ApprovalSection(required=False)
    gateway_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """Local target: the gateway's port (default: chosen once, then kept)."""
    gateway_idle_timeout: Duration = 15.0
    """Local gateway: a connection idle this long -- no complete request yet, or none since the
    last answer -- is closed (idle or half-open connections cannot pile up)."""
    gateway_body_timeout: Duration = 10.0
    """Local gateway: a request whose body has not arrived this long after its headers gets a 408."""
    queries: QueriesSection = QueriesSection()
    metrics: dict[str, MetricSection] = Field(
        default_factory=dict,
        description="your own metrics, each judged in every canary analysis (business metrics "
        "included: e.g. the share of positive predictions relative to stable)",
    )
    ledger_url: str | None = None
    """SQLAlchemy URL of the ledger (e.g. postgresql://...); default: $LAUNCHBAY_LEDGER_URL, else
    SQLite in the state directory."""
    witness_dir: str | None = None
    """Where the ledger's heads are witnessed, signed, outside its database (default: `witness/` in
    the state directory); put it on a disk the database's administrators cannot write."""
    witness_keys: list[str] = Field(default_factory=list)
    """Public witness keys of other machines writing the same ledger and witness directory."""
    prometheus_url: str | None = None
    """An existing Prometheus; default for the local target: launchbay starts Debian's `prometheus`."""
    prometheus_ca_file: str | None = None
    """CA bundle that signed an https Prometheus's certificate (default: the system's; also
    $LAUNCHBAY_PROMETHEUS_CA_FILE). Credentials: $LAUNCHBAY_PROMETHEUS_TOKEN, or
    $LAUNCHBAY_PROMETHEUS_USER and $LAUNCHBAY_PROMETHEUS_PASSWORD."""
    prometheus_insecure: bool = False
    """Skip TLS verification (never the default: a forged Prometheus could promote a bad model)."""

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, v: dict[str, MetricSection]) -> dict[str, MetricSection]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
                raise ValueError(f"metric name {name!r}: expected lower-case letters, digits and '_'")
        return v

    @field_validator("steps")
    @classmethod
    def _increasing(cls, v: list[int] | list[StepSpec]) -> list[int] | list[StepSpec]:
        weights = [s if isinstance(s, int) else s.set_weight for s in v]
        given = [w for w in weights if w is not None]
        if any(b <= a for a, b in itertools.pairwise(given)):
            raise ValueError(f"expected canary weights that increase, e.g. [5, 25, 50]; got {given}")
        if any(isinstance(s, StepSpec) and s.set_weight == 100 for s in v):
            raise ValueError("a set_weight of 100 is a promotion: end with approval (or none) instead")
        return v

    @model_validator(mode="after")
    def _analysis_metrics_exist(self) -> RolloutSection:
        for i, step in enumerate(self.steps):
            if not isinstance(step, StepSpec) or step.analysis is None:
                continue
            unknown = [m for m in step.analysis.metrics or [] if m not in self.metrics]
            if unknown:
                known = ", ".join(self.metrics) or "none defined"
                raise ValueError(
                    f"steps[{i}].analysis.metrics names {', '.join(unknown)}: expected names under "
                    f"rollout.metrics ({known})"
                )
        return self

    @model_validator(mode="after")
    def _approval_step_has_approvers(self) -> RolloutSection:
        explicit = any(isinstance(s, StepSpec) and s.approval for s in self.steps)
        if explicit and not self.approval.approvers:
            raise ValueError("an `approval` step needs approval.approvers: name who may approve")
        return self

    @model_validator(mode="after")
    def _target_can_shadow(self) -> RolloutSection:
        if self.target == "knative" and self.shadow is not None:
            raise ValueError(
                "Knative (and Cloud Run) cannot mirror requests: set `shadow: null` for this target "
                "or use target kubernetes"
            )
        if self.target == "function" and self.shadow is not None:
            raise ValueError(
                "AWS Lambda aliases cannot mirror requests: set `shadow: null` for the function target "
                "(canary steps and the analysis still judge the candidate against stable)"
            )
        return self


class KubernetesSection(_Strict):
    """Cluster targets (kubernetes, knative): where and how each version runs."""

    namespace: str = "launchbay"
    image: str = Field(
        default="ghcr.io/launchbay/{model}:v{version}",
        description="serving image of a version; {model} and {version} are filled in",
    )
    min_replicas: Annotated[int, Field(ge=1)] = 1
    max_replicas: Annotated[int, Field(ge=1)] = 5
    target_cpu_percent: Annotated[int, Field(ge=1, le=100)] = 70
    cpu_request: Quantity = "250m"
    cpu_limit: Quantity = "1"
    memory_request: Quantity = "512Mi"
    memory_limit: Quantity = "1Gi"
    require_digest: bool = Field(
        default=True,
        description="release only versions whose pushed image digest was recorded (`launchbay "
        "record-image`): a tag can be re-pushed between analysis and promotion, a digest cannot",
    )
    image_wait: Annotated[int, Field(ge=0)] = Field(
        default=1800,
        description="seconds the workflow's release step waits for CI to record the version's image",
    )
    gateway_name: str = Field(default="launchbay", description="the Gateway API Gateway routes attach to")
    gateway_namespace: str | None = None
    trusted_keys_configmap: str = Field(
        default="launchbay-trusted-keys", description="ConfigMap with signing-key.pub, mounted read-only"
    )
    knative_min_scale: Annotated[int, Field(ge=0)] = 0
    """Knative: 0 scales to zero when idle."""
    scale_to_zero_retention: str = "0s"
    kubeconfig: str | None = Field(
        default=None, description="default: $KUBECONFIG, ~/.kube/config, or in-cluster"
    )
    context: str | None = None

    @model_validator(mode="after")
    def _replicas(self) -> KubernetesSection:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        return self


class CloudRunSection(_Strict):
    """Google Cloud Run (and Cloud Functions 2nd gen, which run on it): `launchbay render --target
    cloud-run` writes the Knative Service in the dialect Cloud Run's Admin API v1 accepts."""

    project: str | None = Field(default=None, description="project number or ID (the Service's namespace)")
    region: str = "us-central1"
    service_account: str | None = Field(default=None, description="the revisions' service account e-mail")
    trusted_keys_secret: str = Field(
        default="launchbay-trusted-keys",
        description="Secret Manager secret holding signing-key.pub (Cloud Run mounts no ConfigMaps)",
    )
    container_concurrency: Annotated[int, Field(ge=1, le=1000)] = 80


class FunctionSection(_Strict):
    """The `function` target (AWS Lambda): one function per model, a published version per model
    version, traffic through a weighted alias (`AdditionalVersionWeights`)."""

    name: str | None = Field(default=None, description="the function's name; default: the model's name")
    alias: str = Field(default="live", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
    """The alias clients invoke (its Function URL or API Gateway integration): launchbay moves it."""
    region: str | None = Field(default=None, description="default: $AWS_REGION, $AWS_DEFAULT_REGION")
    role: str | None = Field(default=None, description="execution role ARN; needed to create the function")
    memory_mb: Annotated[int, Field(ge=128, le=10240)] = 1024
    timeout_s: Annotated[int, Field(ge=1, le=900)] = 30
    layers: list[str] = Field(
        default_factory=list, description="layer ARNs with the package's requirements.txt installed"
    )
    endpoint_url: str | None = Field(
        default=None, description="another Lambda API endpoint (e.g. LocalStack)"
    )


class PricesSection(_Strict):
    """`launchbay advise`'s list prices in USD; a price left out keeps the documented default."""

    k8s_vcpu_hour: Annotated[float, Field(ge=0)] | None = None
    k8s_gb_hour: Annotated[float, Field(ge=0)] | None = None
    run_vcpu_second: Annotated[float, Field(ge=0)] | None = None
    run_gb_second: Annotated[float, Field(ge=0)] | None = None
    run_per_million: Annotated[float, Field(ge=0)] | None = None
    fn_gb_second: Annotated[float, Field(ge=0)] | None = None
    fn_per_million: Annotated[float, Field(ge=0)] | None = None
    fn_max_memory_mb: Annotated[float, Field(gt=0)] | None = None
    fn_max_package_mb: Annotated[float, Field(gt=0)] | None = None
    edge_max_bundle_mb: Annotated[float, Field(gt=0)] | None = None
    """The largest edge bundle (with its dependencies) your devices take."""

    def given(self) -> dict[str, float]:
        """The prices the file sets."""
        return self.model_dump(exclude_none=True)


class AdviseSection(_Strict):
    """`launchbay advise`: the price table (USD) replacing any of the documented defaults."""

    prices: PricesSection = PricesSection()


NotifyEvent = Literal["awaiting-approval", "promoted", "rolled-back", "failed", "aborted"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("awaiting-approval", "promoted", "rolled-back", "failed", "aborted")
"""The release events a webhook can be told about (each is a phase a release enters)."""


class WebhookSection(_Strict):
    """One webhook receiver. Its URL is a secret (a Slack incoming-webhook URL is a credential):
    it is read from an environment variable or a file when a notification is sent, never from
    this file and never written to the ledger."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    format: Literal["json", "slack"] = "json"
    url_env: str | None = None
    url_file: str | None = None
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS))

    @model_validator(mode="before")
    @classmethod
    def _no_url_in_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data:
            raise ValueError(
                "a webhook URL is a secret and does not belong in launchbay.yaml: give url_env "
                "(an environment variable holding it) or url_file (a file holding it)"
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> WebhookSection:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError(f"webhook {self.name!r}: give exactly one of url_env or url_file")
        return self


class NotificationsSection(_Strict):
    """Who is told when a release needs someone or ends (`notifications:`)."""

    webhooks: list[WebhookSection] = Field(default_factory=list)
    attempts: int = Field(default=5, ge=1, le=20)
    """Deliveries tried per notification and receiver (the first and its retries)."""
    backoff: Duration = 1.0
    """Wait before the first retry; doubled for each next one (at most 60 s)."""
    timeout: Duration = 5.0
    """How long one delivery may take."""
    max_age: Duration = 3600.0
    """Events older than this are never sent (a receiver configured today is not told of last week)."""
    page_url: str | None = None
    """The release managers' page (`launchbay ui`), linked from each notification."""

    @model_validator(mode="after")
    def _names_distinct(self) -> NotificationsSection:
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names):
            raise ValueError(f"notifications.webhooks: names must differ (got {', '.join(names)})")
        return self


class LaunchbayConfig(_Strict):
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

    # Set by `load_config`, not by the file: where the file was read from.
    source: Path | None = Field(default=None, exclude=True)

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
            if key in _TASK_GATES and task not in _TASK_GATES[key]:
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
