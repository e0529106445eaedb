"""What the training workflow's pods get in a cluster: identity, secrets, keys, resources, retries.

Applied by `argo.for_argo` only -- the local executor runs the same workflow without them (it
has no Secrets to mount; its steps read the same settings from the environment):

- every step: the pipeline image, requests/limits, a non-root restricted security context, a
  writable /tmp (the root filesystem is read-only), the settings Secret as environment
  (`argo.settings_secret`: MLflow, ledger, Prometheus credentials), the trusted public keys
  (ConfigMap `kubernetes.trusted_keys_configmap`) and a retry on *transient* errors only: a gate
  that says no fails once, an evicted pod is tried again;
- the sign step alone: the signing key (Secret `argo.signing_key_secret`), mounted read-only;
- the workflow: `ttlStrategy` (succeeded kept `argo.keep_succeeded`, failed `argo.keep_failed`)
  and `podGC` (a succeeded workflow's pods are deleted; a failed one's kept for their logs).
"""

from __future__ import annotations

import copy
from typing import Any

from hera.workflows import Script, Workflow
from hera.workflows.models import (
    Backoff,
    Capabilities,
    ConfigMapVolumeSource,
    EmptyDirVolumeSource,
    EnvFromSource,
    EnvVar,
    IntOrString,
    PodGC,
    PodSecurityContext,
    Quantity,
    ResourceRequirements,
    RetryStrategy,
    SeccompProfile,
    SecretEnvSource,
    SecretVolumeSource,
    SecurityContext,
    TTLStrategy,
    Volume,
    VolumeMount,
)

from launchbay.config import LaunchbayConfig
from launchbay.rollout.targets.manifests import KEYS_DIR, trusted_keys_env

SIGNING_DIR = "/var/run/secrets/launchbay/signing"
SIGNING_FILE = "signing-key.pem"
"""The key in the signing Secret, and the file the sign step reads it from."""
HOME_DIR = "/tmp/launchbay"
UID = 10001
SIGN_TEMPLATE = "sign"


def for_cluster(w: Workflow, cfg: LaunchbayConfig) -> Workflow:
    """Give the workflow and each of its script templates what they need to run in a cluster."""
    a = cfg.argo
    w.ttl_strategy = TTLStrategy(seconds_after_success=a.keep_succeeded, seconds_after_failure=a.keep_failed)
    w.pod_gc = PodGC(strategy="OnWorkflowSuccess")
    w.security_context = PodSecurityContext(
        run_as_non_root=True,
        run_as_user=UID,
        run_as_group=UID,
        fs_group=UID,
        seccomp_profile=SeccompProfile(type="RuntimeDefault"),
    )
    volumes = [
        Volume(name="tmp", empty_dir=EmptyDirVolumeSource()),
        Volume(
            name="trusted-keys", config_map=ConfigMapVolumeSource(name=cfg.kubernetes.trusted_keys_configmap)
        ),
        Volume(
            name="signing-key",
            secret=SecretVolumeSource(secret_name=a.signing_key_secret, default_mode=0o400),
        ),
    ]
    w.volumes = volumes
    w.templates = [_step(t, cfg) if isinstance(t, Script) else t for t in w.templates]
    return w


def _step(template: Script, cfg: LaunchbayConfig) -> Script:
    # Hera's @script templates are module-level singletons: change copies, never the shared ones.
    a = cfg.argo
    clone = copy.copy(template)
    clone.image = a.image
    clone.resources = ResourceRequirements(
        requests={"cpu": Quantity(a.cpu_request), "memory": Quantity(a.memory_request)},
        limits={"cpu": Quantity(a.cpu_limit), "memory": Quantity(a.memory_limit)},
    )
    clone.security_context = SecurityContext(
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=Capabilities(drop=["ALL"]),
    )
    keys = trusted_keys_env(cfg)
    env: list[Any] = [e for e in _list(template.env) if getattr(e, "name", None) != keys["name"]]
    env += [
        EnvVar(name="LAUNCHBAY_HOME", value=HOME_DIR),
        EnvVar(name="BENTOML_HOME", value=f"{HOME_DIR}/bentoml"),
        EnvVar(name=keys["name"], value=keys["value"]),
    ]
    mounts = [
        VolumeMount(name="tmp", mount_path="/tmp"),
        VolumeMount(name="trusted-keys", mount_path=KEYS_DIR, read_only=True),
    ]
    if template.name == SIGN_TEMPLATE:
        env.append(EnvVar(name="LAUNCHBAY_SIGNING_KEY", value=f"{SIGNING_DIR}/{SIGNING_FILE}"))
        mounts.append(VolumeMount(name="signing-key", mount_path=SIGNING_DIR, read_only=True))
    clone.env = env
    clone.volume_mounts = mounts
    if a.settings_secret:
        clone.env_from = [EnvFromSource(secret_ref=SecretEnvSource(name=a.settings_secret))]
    if a.retries:
        clone.retry_strategy = RetryStrategy(
            limit=IntOrString(str(a.retries)),  # Argo's schema types IntOrString as a string
            retry_policy="OnTransientError",
            backoff=Backoff(duration="10s", factor=IntOrString("2"), max_duration="5m"),
        )
    return clone


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def referenced(obj: Any) -> set[tuple[str, str]]:
    """(kind, name) of every Secret, ConfigMap and ServiceAccount an object refers to, anywhere in it.

    A walk rather than a list of paths: a Workflow, a CronWorkflow, a Deployment and a Knative
    Service nest pod specs differently, and a reference missed here would be one nobody checks.
    """
    out: set[tuple[str, str]] = set()
    if isinstance(obj, list):
        for item in obj:
            out |= referenced(item)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if key == "serviceAccountName" and isinstance(value, str):
                out.add(("ServiceAccount", value))
            elif key == "secretName" and isinstance(value, str):
                out.add(("Secret", value))
            elif key in ("secretRef", "secretKeyRef") and isinstance(value, dict):
                out.add(("Secret", value["name"]))
            elif key in ("configMap", "configMapRef", "configMapKeyRef") and isinstance(value, dict):
                out.add(("ConfigMap", value["name"]))
            out |= referenced(value)
    return out
