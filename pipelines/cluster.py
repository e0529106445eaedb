"""One model's part of a cluster where launchbay's chart is installed, as a kustomize directory.

launchbay itself (its controller, the Model CRD, its RBAC in each team namespace, Prometheus
rules and dashboard) is installed once per cluster by the Helm chart (charts/launchbay). What
`launchbay render --target cluster -o DIR` writes is one model's own objects, every one named
after the model, so that two models' directories never touch each other's objects and
`kubectl delete -k DIR` removes only what the model's pipeline needs: the Model object the
controller drives, the Argo WorkflowTemplate and CronWorkflow (by image digest), the steps' and
CI's service accounts with the least RBAC the code calls, and the trusted public keys the steps
verify with. No namespace (creating and deleting namespaces is the platform's), no controller,
never a Secret: those the README lists with the command that creates each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from launchbay.config import LaunchbayConfig
from launchbay.errors import UsageError
from launchbay.pipelines.argo import template_and_cron, to_yaml
from launchbay.pipelines.pods import SIGNING_FILE, UID
from launchbay.rollout.targets.images import CLUSTER_TARGETS
from launchbay.rollout.targets.kube_api import RBAC
from launchbay.rollout.targets.manifests import trusted_key_names

_PART_OF = {"app.kubernetes.io/part-of": "launchbay"}


@dataclass(frozen=True)
class Provided:
    """An object launchbay refers to but does not render: the operator creates it."""

    kind: str
    namespace: str
    name: str
    how: str


def operator_provided(cfg: LaunchbayConfig) -> list[Provided]:
    """The Secrets the installation needs and how to create each (keys are documented in config)."""
    a, k = cfg.argo, cfg.kubernetes
    out = [
        Provided(
            "Secret",
            a.namespace,
            a.signing_key_secret,
            f"kubectl -n {a.namespace} create secret generic {a.signing_key_secret} "
            f"--from-file={SIGNING_FILE}=PATH-OF-THE-PRIVATE-KEY",
        )
    ]
    if a.settings_secret:
        literal = (
            "--from-literal=MLFLOW_TRACKING_URI=... --from-literal=LAUNCHBAY_LEDGER_URL=postgresql://..."
        )
        out += [
            Provided(
                "Secret",
                ns,
                a.settings_secret,
                f"kubectl -n {ns} create secret generic {a.settings_secret} {literal}",
            )
            for ns in dict.fromkeys((a.namespace, k.namespace))
        ]
    return out


def _meta(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {**_PART_OF, **labels}}


def _role(name: str, ns: str, rules: dict[tuple[str, str], tuple[str, ...]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(name, ns),
        "rules": [{"apiGroups": [g], "resources": [r], "verbs": list(v)} for (g, r), v in rules.items()],
    }


def _binding(name: str, ns: str, subjects: list[tuple[str, str]], role: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role or name},
        "subjects": [{"kind": "ServiceAccount", "name": n, "namespace": s} for s, n in subjects],
    }


def _sa(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns)}


ARGO_EXECUTOR: dict[tuple[str, str], tuple[str, ...]] = {
    ("argoproj.io", "workflowtaskresults"): ("create", "patch"),
}
"""What Argo's executor in each step pod needs (it reports outputs as WorkflowTaskResults)."""
ARGO_SUBMITTER: dict[tuple[str, str], tuple[str, ...]] = {
    ("argoproj.io", "workflows"): ("create", "get", "update"),
}
"""What `launchbay submit` (create) and `launchbay approve --argo-host` (set the approval node's
parameter and resume it: get + update through the Argo server) need; Argo's server acts with the
caller's token in its client auth mode."""


def pipeline_sa(cfg: LaunchbayConfig) -> str:
    """The service account of the model's workflow pods (`argo.service_account`, else MODEL-pipeline)."""
    return cfg.argo.service_account or f"{cfg.model.name}-pipeline"


def submitter_sa(cfg: LaunchbayConfig) -> str:
    """The service account whose token CI submits and approves with (ARGO_TOKEN)."""
    return f"{cfg.model.name}-submitter"


def rbac(cfg: LaunchbayConfig) -> list[dict[str, Any]]:
    """The model's service accounts and the least RBAC: each Role lists exactly the verbs the code
    calls, each object is named after the model."""
    serving, argo, model = cfg.kubernetes.namespace, cfg.argo.namespace, cfg.model.name
    steps, submitter = pipeline_sa(cfg), submitter_sa(cfg)
    return [
        _sa(steps, argo),
        _role(f"{model}-pipeline", argo, ARGO_EXECUTOR),
        _binding(f"{model}-pipeline", argo, [(argo, steps)]),
        # The workflow's release step records the release (it reads the route), its promote step
        # converges the world once the approval is recorded -- the controller does the rest.
        _role(f"{model}-release", serving, RBAC),
        _binding(f"{model}-release", serving, [(argo, steps)]),
        _sa(submitter, argo),
        _role(submitter, argo, ARGO_SUBMITTER),
        _binding(submitter, argo, [(argo, submitter)]),
        *_monitor_binding(cfg),
        {  # the token CI uses as ARGO_TOKEN (`kubectl get secret ... -o jsonpath={.data.token}`)
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                **_meta(f"{submitter}.service-account-token", argo),
                "annotations": {"kubernetes.io/service-account.name": submitter},
            },
        },
    ]


def _monitor_binding(cfg: LaunchbayConfig) -> list[dict[str, Any]]:
    """With `monitor.retrain`, launchbay's controller starts the retraining Workflow: it may do what
    the submitter does, in the Argo namespace only."""
    if cfg.monitor is None or not cfg.monitor.retrain.on:
        return []
    namespace, account = cfg.argo.controller.split("/")
    subjects = [(namespace, account)]
    return [_binding(f"{cfg.model.name}-monitor", cfg.argo.namespace, subjects, submitter_sa(cfg))]


def trusted_keys(cfg: LaunchbayConfig, keys: list[Path]) -> list[dict[str, Any]]:
    """The trusted public keys as a ConfigMap in the workflow's namespace (the controller writes the
    serving namespace's copy from the Model object).

    Raises:
        UsageError: a key is missing or not a PEM public key.
    """
    names = trusted_key_names(cfg)
    if len(keys) != len(names):
        raise UsageError(
            f"expected {len(names)} trusted key(s), got {len(keys)}: list every key a deployment "
            "trusts under signing.trusted_keys in launchbay.yaml"
        )
    data = {}
    for name, path in zip(names, keys, strict=True):
        try:
            text = path.read_text()
        except OSError as exc:
            raise UsageError(
                f"trusted key {path}: {exc.strerror or exc}; set signing.trusted_keys to the public key "
                "of the key CI signs with (or create the local key: launchbay keys)"
            ) from None
        if "-----BEGIN PUBLIC KEY-----" not in text:
            raise UsageError(f"trusted key {path}: expected a PEM public key (-----BEGIN PUBLIC KEY-----)")
        data[name] = text
    meta = _meta(cfg.kubernetes.trusted_keys_configmap, cfg.argo.namespace)
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}]


PIPELINE_DOCKERFILE = """# syntax=docker/dockerfile:1
# The pipeline image (argo.image): launchbay and this model repository. The workflow's steps and
# Build it from the directory holding launchbay.yaml:
#   docker build -f @@DIR@@/images/pipeline.Dockerfile --build-arg LAUNCHBAY_PACKAGE=... -t @@IMAGE@@ .
FROM python:3.11-slim-bookworm
# A requirement (pinned by default), or a wheel's path inside the build context.
ARG LAUNCHBAY_PACKAGE=launchbay==@@VERSION@@
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /project
COPY . .
# Then the model's own libraries, when the repository lists them.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir "${LAUNCHBAY_PACKAGE}" \\
 && if [ -f requirements.txt ]; then pip install --no-cache-dir --requirement requirements.txt; fi
USER @@UID@@:@@UID@@
"""
PIPELINE_DOCKERIGNORE = ".git\n.launchbay\n.venv\ndist\n**/__pycache__\n**/*.pyc\n"
"""Beside the Dockerfile as `pipeline.Dockerfile.dockerignore` (BuildKit reads it for `-f`)."""


def pipeline_dockerfile(cfg: LaunchbayConfig, directory: str = "DIR") -> str:
    """The pipeline image's Dockerfile; `directory` is where the rendering lives in the repository."""
    return (
        PIPELINE_DOCKERFILE.replace("@@DIR@@", directory)
        .replace("@@IMAGE@@", cfg.argo.image)
        .replace("@@VERSION@@", version("launchbay"))
        .replace("@@UID@@", str(UID))
    )


def _yaml_docs(objects: list[dict[str, Any]]) -> str:
    return "---\n".join(to_yaml(o) for o in objects)


def for_model(cfg: LaunchbayConfig) -> LaunchbayConfig:
    """The config as the model's directory renders it: its trusted-keys ConfigMap named after it
    (the name the controller gives the serving namespace's copy), its steps' service account."""
    k, a = cfg.kubernetes, cfg.argo
    return cfg.model_copy(update={
        "kubernetes": k.model_copy(update={"trusted_keys_configmap": f"{cfg.model.name}-trusted-keys"}),
        "argo": a.model_copy(update={"service_account": pipeline_sa(cfg)}),
    })  # fmt: skip


def files(
    cfg: LaunchbayConfig, keys: list[Path], git_commit: str = "", directory: str = "DIR"
) -> dict[str, str]:
    """The kustomize directory (`directory`: where it is written, relative to the config's): path -> text."""
    from launchbay.rollout.operator.resource import model_object

    cfg = for_model(cfg)
    template, cron = template_and_cron(cfg, git_commit)
    model = model_object(cfg, keys)
    model["metadata"]["namespace"] = cfg.kubernetes.namespace
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["model.yaml", "rbac.yaml", "trusted-keys.yaml", "workflow.yaml"],
    }
    return {
        "kustomization.yaml": to_yaml(kustomization),
        "model.yaml": to_yaml(model),
        "rbac.yaml": _yaml_docs(rbac(cfg)),
        "trusted-keys.yaml": _yaml_docs(trusted_keys(cfg, keys)),
        "workflow.yaml": _yaml_docs([template, cron]),
        "images/pipeline.Dockerfile": pipeline_dockerfile(cfg, directory),
        "images/pipeline.Dockerfile.dockerignore": PIPELINE_DOCKERIGNORE,
        "README.md": readme(cfg),
    }


def readme(cfg: LaunchbayConfig) -> str:
    """What to create by hand, then what to apply, in order."""
    secrets = "\n".join(f"   {p.how}" for p in operator_provided(cfg))
    serving, argo = cfg.kubernetes.namespace, cfg.argo.namespace
    return f"""# {cfg.model.name} in a cluster

Rendered by `launchbay render --target cluster --image REPOSITORY@sha256:... -o DIR`; render again
after changing launchbay.yaml. `kubectl delete -k DIR` removes these objects only: never a
namespace, never the model's serving workloads (the controller's), never the ledger.

Needs: launchbay's chart installed with `{serving}` among its `teams` (the controller, the Model
CRD, its Role here), Argo Workflows (namespace `{argo}`), a Gateway API implementation with the
Gateway `{cfg.kubernetes.gateway_name}` (or Knative Serving for `rollout.target: knative`), Prometheus.

1. The namespaces exist (the platform's: `kubectl create namespace {serving}`), then the Secrets
   (never rendered, never committed):
{secrets}
   The settings Secret's keys become the steps' environment: MLFLOW_TRACKING_URI (and its
   credentials), LAUNCHBAY_LEDGER_URL (the installation's shared ledger).
2. `kubectl apply -k DIR` -- the Model, the steps' RBAC, trusted keys, the WorkflowTemplate.
   `kubectl -n {serving} get model {cfg.model.name}` shows its releases.
3. CI: ARGO_TOKEN is the token of `{submitter_sa(cfg)}`: `kubectl -n {argo} get secret
   {submitter_sa(cfg)}.service-account-token -o jsonpath={{.data.token}} | base64 -d`
"""


def _relative(out: Path, cfg: LaunchbayConfig) -> str:
    """`out` as the build command (run where launchbay.yaml is) names it."""
    return os.path.relpath(out.resolve(), cfg.base_dir.resolve())


def require_cluster_target(cfg: LaunchbayConfig) -> None:
    """Raises UsageError, naming the alternatives, unless the config's target runs in a cluster."""
    if cfg.rollout.target not in CLUSTER_TARGETS:
        raise UsageError(
            f"rollout.target is {cfg.rollout.target!r}: a cluster runs kubernetes or knative (set "
            "rollout.target, or install launchbay once per cluster with its Helm chart and onboard the "
            "model with `launchbay render --target model`); to build the pipeline image only, use "
            "--target pipeline-image -o DIR"
        )


def image_files(cfg: LaunchbayConfig, directory: str = "DIR") -> dict[str, str]:
    """Only what building the pipeline image needs (any target: CI builds it for Argo too)."""
    return {
        "images/pipeline.Dockerfile": pipeline_dockerfile(cfg, directory),
        "images/pipeline.Dockerfile.dockerignore": PIPELINE_DOCKERIGNORE,
    }


def write(
    cfg: LaunchbayConfig, out: Path, keys: list[Path], git_commit: str = "", images_only: bool = False
) -> list[Path]:
    """Write the directory (`images_only`: the pipeline image's files); return the files written.

    Raises:
        UsageError: a whole installation for a config whose target is not a cluster's.
    """
    if not images_only:
        require_cluster_target(cfg)
    written = []
    rel_dir = _relative(out, cfg)
    chosen = image_files(cfg, rel_dir) if images_only else files(cfg, keys, git_commit, rel_dir)
    for rel, text in chosen.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
