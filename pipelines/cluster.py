"""launchbay's installation in a cluster, rendered from a model's config as a kustomize directory.

`launchbay render --target cluster -o DIR` writes everything a platform engineer applies with
`kubectl apply -k DIR` (and `-k DIR/operator` with the Prometheus Operator): the serving
namespace, service accounts and the least RBAC the code needs, the trusted public keys (both
namespaces: the model pods and the workflow's steps verify), the controller Deployment, the
Prometheus files and the Grafana dashboard as ConfigMaps, and the training WorkflowTemplate and
CronWorkflow. What it cannot render -- Secrets -- is listed in `OPERATOR_PROVIDED` and the
directory's README, with the command that creates each.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

from launchbay.config import LaunchbayConfig
from launchbay.errors import UsageError
from launchbay.pipelines import monitoring
from launchbay.pipelines.argo import template_and_cron, to_yaml
from launchbay.pipelines.pods import HOME_DIR, SIGNING_FILE, UID
from launchbay.rollout.targets import manifests
from launchbay.rollout.targets.kube_api import RBAC
from launchbay.rollout.targets.manifests import trusted_key_names, trusted_keys_env

CONTROLLER_SA = "launchbay"
SUBMITTER_SA = "launchbay-submitter"
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


def namespace(cfg: LaunchbayConfig) -> dict[str, Any]:
    """The serving namespace, with the restricted Pod Security Standard enforced."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": cfg.kubernetes.namespace,
            "labels": {**_PART_OF, "pod-security.kubernetes.io/enforce": "restricted"},
        },
    }


def _role(name: str, ns: str, rules: dict[tuple[str, str], tuple[str, ...]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(name, ns),
        "rules": [{"apiGroups": [g], "resources": [r], "verbs": list(v)} for (g, r), v in rules.items()],
    }


def _binding(name: str, ns: str, subjects: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
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


def rbac(cfg: LaunchbayConfig) -> list[dict[str, Any]]:
    """Service accounts and the least RBAC: each Role lists exactly the verbs the code calls."""
    serving, argo = cfg.kubernetes.namespace, cfg.argo.namespace
    pipeline_sa = cfg.argo.service_account or "default"
    objects = [
        _sa(CONTROLLER_SA, serving),
        _role("launchbay-rollout", serving, RBAC),
        # The controller and the workflow's release/promote steps both move traffic.
        _binding("launchbay-rollout", serving, [(serving, CONTROLLER_SA), (argo, pipeline_sa)]),
        _role("launchbay-pipeline", argo, ARGO_EXECUTOR),
        _binding("launchbay-pipeline", argo, [(argo, pipeline_sa)]),
        _sa(SUBMITTER_SA, argo),
        _role(SUBMITTER_SA, argo, ARGO_SUBMITTER),
        _binding(SUBMITTER_SA, argo, [(argo, SUBMITTER_SA)]),
        {  # the token CI uses as ARGO_TOKEN (`kubectl get secret ... -o jsonpath={.data.token}`)
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                **_meta(f"{SUBMITTER_SA}.service-account-token", argo),
                "annotations": {"kubernetes.io/service-account.name": SUBMITTER_SA},
            },
        },
    ]
    if cfg.argo.service_account:
        objects.insert(3, _sa(cfg.argo.service_account, argo))
    return objects


def trusted_keys(cfg: LaunchbayConfig, keys: list[Path]) -> list[dict[str, Any]]:
    """The trusted public keys as a ConfigMap in the serving and the workflow's namespace.

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
    name = cfg.kubernetes.trusted_keys_configmap
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, ns), "data": data}
        for ns in dict.fromkeys((cfg.kubernetes.namespace, cfg.argo.namespace))
    ]


def controller(cfg: LaunchbayConfig) -> dict[str, Any]:
    """The controller: one replica (Recreate: never two driving the same releases at once)."""
    model = cfg.model.name
    labels = {
        "app.kubernetes.io/name": "launchbay-controller",
        "app.kubernetes.io/component": "controller",
        "launchbay.io/model": model,
        monitoring.JOB_LABEL: monitoring.CONTROLLER_JOB,
    }
    container: dict[str, Any] = {
        "name": "controller",
        "image": cfg.argo.image,  # the pipeline image: launchbay and this project's config
        "command": [
            "launchbay",
            "controller",
            "--config",
            cfg.argo.config_path,
            "--metrics-port",
            str(monitoring.METRICS_PORT),
        ],
        "ports": [{"name": "metrics", "containerPort": monitoring.METRICS_PORT}],
        "env": [{"name": "LAUNCHBAY_HOME", "value": HOME_DIR}, trusted_keys_env(cfg)],
        "livenessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 10},
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": manifests.restricted(UID),
        "volumeMounts": manifests.mounts(),
    }
    if cfg.argo.settings_secret:
        container["envFrom"] = [{"secretRef": {"name": cfg.argo.settings_secret}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(f"{model}-controller", cfg.kubernetes.namespace, **labels),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {
                "matchLabels": {"app.kubernetes.io/component": "controller", "launchbay.io/model": model}
            },
            "template": {
                "metadata": {"labels": {**_PART_OF, **labels}},
                "spec": {
                    "serviceAccountName": CONTROLLER_SA,
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {
                            "name": "trusted-keys",
                            "configMap": {"name": cfg.kubernetes.trusted_keys_configmap},
                        },
                    ],
                },
            },
        },
    }


PIPELINE_DOCKERFILE = """# syntax=docker/dockerfile:1
# The pipeline image (argo.image): launchbay and this model repository. The workflow's steps and
# the controller run it. Build from the directory holding launchbay.yaml:
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


def dashboard() -> str:
    """The Grafana dashboard (metrics of the model pods and the controller, none of the local gateway)."""
    return resources.files("launchbay.pipelines").joinpath("templates/grafana-dashboard.json").read_text()


def files(
    cfg: LaunchbayConfig, keys: list[Path], git_commit: str = "", directory: str = "DIR"
) -> dict[str, str]:
    """The kustomize directory (`directory`: where it is written, relative to the config's): path -> text."""
    template, cron = template_and_cron(cfg, git_commit)
    serving = cfg.kubernetes.namespace
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["namespace.yaml", "rbac.yaml", "trusted-keys.yaml", "controller.yaml", "workflow.yaml"],
        "configMapGenerator": [
            {
                "name": "launchbay-prometheus",
                "namespace": serving,
                "files": ["prometheus/scrape.yml", "prometheus/rules.yml"],
            },
            {
                "name": "launchbay-grafana-dashboard",
                "namespace": serving,
                "files": ["grafana/launchbay.json"],
                "options": {"labels": {"grafana_dashboard": "1"}},  # Grafana's dashboard sidecar
            },
        ],
        "generatorOptions": {"disableNameSuffixHash": True},
    }
    operator = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["monitoring.yaml"],
    }
    return {
        "kustomization.yaml": to_yaml(kustomization),
        "namespace.yaml": to_yaml(namespace(cfg)),
        "rbac.yaml": _yaml_docs(rbac(cfg)),
        "trusted-keys.yaml": _yaml_docs(trusted_keys(cfg, keys)),
        "controller.yaml": to_yaml(controller(cfg)),
        "workflow.yaml": _yaml_docs([template, cron]),
        "prometheus/scrape.yml": to_yaml(monitoring.scrape_file(cfg)),
        "prometheus/rules.yml": to_yaml(monitoring.rules_file()),
        "grafana/launchbay.json": json.dumps(json.loads(dashboard()), indent=2) + "\n",
        "operator/kustomization.yaml": to_yaml(operator),
        "operator/monitoring.yaml": _yaml_docs(monitoring.operator_objects(cfg)),
        "images/pipeline.Dockerfile": pipeline_dockerfile(cfg, directory),
        "images/pipeline.Dockerfile.dockerignore": PIPELINE_DOCKERIGNORE,
        "README.md": readme(cfg),
    }


def readme(cfg: LaunchbayConfig) -> str:
    """What to create by hand, then what to apply, in order."""
    secrets = "\n".join(f"   {p.how}" for p in operator_provided(cfg))
    return f"""# launchbay in a cluster: {cfg.model.name}

Rendered by `launchbay render --target cluster -o DIR`; render again after changing launchbay.yaml.

Needs: Argo Workflows (namespace `{cfg.argo.namespace}`), a Gateway API implementation with the
Gateway `{cfg.kubernetes.gateway_name}` (or Knative Serving for `rollout.target: knative`), Prometheus.

1. Secrets (never rendered, never committed):
{secrets}
   The settings Secret's keys become the environment of the steps and the controller:
   MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN),
   LAUNCHBAY_LEDGER_URL (a shared PostgreSQL ledger), LAUNCHBAY_PROMETHEUS_TOKEN (or
   LAUNCHBAY_PROMETHEUS_USER/LAUNCHBAY_PROMETHEUS_PASSWORD), LAUNCHBAY_PROMETHEUS_CA_FILE.
2. `kubectl apply -k .` -- namespace, RBAC, trusted keys, the controller, the WorkflowTemplate.
3. Prometheus Operator: `kubectl apply -k operator` (PodMonitors, PrometheusRule); a plain
   Prometheus: mount ConfigMap `launchbay-prometheus` (scrape.yml, rules.yml) into it.
4. CI: ARGO_TOKEN is the token of `{SUBMITTER_SA}`: `kubectl -n {cfg.argo.namespace} get secret
   {SUBMITTER_SA}.service-account-token -o jsonpath={{.data.token}} | base64 -d`
"""


def _relative(out: Path, cfg: LaunchbayConfig) -> str:
    """`out` as the build command (run where launchbay.yaml is) names it."""
    return os.path.relpath(out.resolve(), cfg.base_dir.resolve())


CLUSTER_TARGETS = ("kubernetes", "knative")


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
    if not images_only and cfg.rollout.target not in CLUSTER_TARGETS:
        raise UsageError(
            f"rollout.target is {cfg.rollout.target!r}: a cluster runs kubernetes or knative (set "
            "rollout.target, or install launchbay once per cluster with its Helm chart and onboard the "
            "model with `launchbay render --target model`); to build the pipeline image only, use "
            "--target pipeline-image -o DIR"
        )
    written = []
    rel_dir = _relative(out, cfg)
    chosen = image_files(cfg, rel_dir) if images_only else files(cfg, keys, git_commit, rel_dir)
    for rel, text in chosen.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
