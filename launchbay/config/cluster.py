"""Where versions run in a cluster: Argo, Kubernetes, Cloud Run, AWS Lambda (pipelines, targets)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from launchbay.config.base import _K8S_NAME, Quantity, Section


class ArgoSection(Section):
    """How the workflow is rendered for and submitted to Argo Workflows (and what its pods get)."""

    image: str = "ghcr.io/launchbay/launchbay:0.1.0"
    """Image of the pipeline's steps (launchbay and the model repository; CI builds it)."""
    namespace: Annotated[str, Field(pattern=_K8S_NAME)] = "argo"
    """Namespace the Workflow is submitted to."""
    service_account: Annotated[str, Field(pattern=_K8S_NAME)] | None = None
    """Service account of the workflow's pods; null: MODEL-pipeline (`render --target cluster` makes
    it, with the least RBAC the steps need)."""
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
    """CPU request of each step's pod."""
    cpu_limit: Quantity = "2"
    """CPU limit of each step's pod."""
    memory_request: Quantity = "1Gi"
    """Memory request of each step's pod."""
    memory_limit: Quantity = "4Gi"
    """Memory limit of each step's pod."""
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Retries of a step that failed for a transient reason (evicted pod, lost node), never of a
    step that failed on its own (a gate that said no)."""
    keep_succeeded: Annotated[int, Field(ge=0)] = 86_400
    """Seconds a succeeded workflow is kept (its pods are deleted when it succeeds)."""
    keep_failed: Annotated[int, Field(ge=0)] = 7 * 86_400
    """Seconds a failed workflow and its pods are kept, to read their logs."""
    controller: str = Field(default="launchbay/launchbay-controller", pattern=r"^[a-z0-9-]+/[a-z0-9-]+$")
    """NAMESPACE/SERVICEACCOUNT of launchbay's cluster controller (the chart's): with `monitor.retrain`
    it starts the retraining Workflow, and `render` grants it that in this namespace."""


class KubernetesSection(Section):
    """Cluster targets (kubernetes, knative): where and how each version runs."""

    namespace: str = "launchbay"
    """Namespace versions are deployed to."""
    image: str = Field(
        default="ghcr.io/launchbay/{model}:v{version}",
        description="serving image of a version; {model} and {version} are filled in",
    )
    min_replicas: Annotated[int, Field(ge=1)] = 1
    """Fewest pods of a version (the HorizontalPodAutoscaler's floor)."""
    max_replicas: Annotated[int, Field(ge=1)] = 5
    """Most pods of a version (the HorizontalPodAutoscaler's ceiling)."""
    target_cpu_percent: Annotated[int, Field(ge=1, le=100)] = 70
    """CPU use the autoscaler keeps each pod at, in percent of its request."""
    cpu_request: Quantity = "250m"
    """CPU request of each serving pod."""
    cpu_limit: Quantity = "1"
    """CPU limit of each serving pod."""
    memory_request: Quantity = "512Mi"
    """Memory request of each serving pod."""
    memory_limit: Quantity = "1Gi"
    """Memory limit of each serving pod."""
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
    """Namespace of the Gateway routes attach to; default: the versions' namespace."""
    trusted_keys_configmap: str = Field(
        default="launchbay-trusted-keys", description="ConfigMap with signing-key.pub, mounted read-only"
    )
    knative_min_scale: Annotated[int, Field(ge=0)] = 0
    """Knative: 0 scales to zero when idle."""
    scale_to_zero_retention: str = "0s"
    """Knative: how long the last pod is kept after traffic stops (e.g. 0s, 5m)."""
    kubeconfig: str | None = Field(
        default=None, description="default: $KUBECONFIG, ~/.kube/config, or in-cluster"
    )
    context: str | None = None
    """kubeconfig context; default: its current context."""

    @model_validator(mode="after")
    def _replicas(self) -> KubernetesSection:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        return self


class CloudRunSection(Section):
    """Google Cloud Run (and Cloud Functions 2nd gen, which run on it): `launchbay render --target
    cloud-run` writes the Knative Service in the dialect Cloud Run's Admin API v1 accepts."""

    project: str | None = Field(default=None, description="project number or ID (the Service's namespace)")
    region: str = "us-central1"
    """Google Cloud region of the service."""
    service_account: str | None = Field(default=None, description="the revisions' service account e-mail")
    trusted_keys_secret: str = Field(
        default="launchbay-trusted-keys",
        description="Secret Manager secret holding signing-key.pub (Cloud Run mounts no ConfigMaps)",
    )
    container_concurrency: Annotated[int, Field(ge=1, le=1000)] = 80
    """Requests one instance serves at once."""


class FunctionSection(Section):
    """The `function` target (AWS Lambda): one function per model, a published version per model
    version, traffic through a weighted alias (`AdditionalVersionWeights`)."""

    name: str | None = Field(default=None, description="the function's name; default: the model's name")
    alias: str = Field(default="live", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
    """The alias clients invoke (its Function URL or API Gateway integration): launchbay moves it."""
    region: str | None = Field(default=None, description="default: $AWS_REGION, $AWS_DEFAULT_REGION")
    role: str | None = Field(default=None, description="execution role ARN; needed to create the function")
    memory_mb: Annotated[int, Field(ge=128, le=10240)] = 1024
    """Memory of the function (Lambda also scales its CPU with it)."""
    timeout_s: Annotated[int, Field(ge=1, le=900)] = 30
    """Seconds one invocation may run."""
    layers: list[str] = Field(
        default_factory=list, description="layer ARNs with the package's requirements.txt installed"
    )
    endpoint_url: str | None = Field(
        default=None, description="another Lambda API endpoint (e.g. LocalStack)"
    )
