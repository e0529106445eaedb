"""infra/: the kustomize base, Prometheus rules and the dashboard are valid and match the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from golden import assert_golden

from launchbay.config import load_config
from launchbay.pipelines.argo import template_and_cron, to_yaml, validate
from launchbay.rollout.targets.validate import problems

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"


def _docs(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_file_the_kustomization_names_exists() -> None:
    k = yaml.safe_load((INFRA / "base" / "kustomization.yaml").read_text())
    files = list(k["resources"]) + [f for g in k["configMapGenerator"] for f in g["files"]]
    assert all((INFRA / "base" / f).exists() for f in files), files


def test_core_objects_validate_and_rbac_is_namespaced_and_explicit() -> None:
    k = yaml.safe_load((INFRA / "base" / "kustomization.yaml").read_text())
    core = [d for f in k["resources"] if f != "argo-training.yaml" for d in _docs(INFRA / "base" / f)]
    assert {d["kind"] for d in core} == {"Namespace", "ServiceAccount", "Role", "RoleBinding"}
    for d in core:
        assert problems(d) == [], d["metadata"]["name"]
    for role in (d for d in core if d["kind"] == "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
    rollout_role = next(d for d in core if d["metadata"]["name"] == "launchbay-rollout")
    verbs = {
        (g, r): set(rule["verbs"])
        for rule in rollout_role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert verbs[("apps", "deployments")] == {
        "get",
        "create",
        "patch",
        "delete",
    }  # what KubernetesTarget calls


def test_the_argo_template_is_what_render_produces_and_is_valid() -> None:
    cfg = load_config(ROOT / "examples" / "fraud-detector" / "launchbay.yaml")
    text = "---\n".join(to_yaml(o) for o in template_and_cron(cfg, ""))
    path = INFRA / "base" / "argo-training.yaml"
    assert_golden(text, path)  # regenerate: launchbay render --target argo-template --git-commit '' -o ...
    template, cron = _docs(path)
    assert validate(template, "io.argoproj.workflow.v1alpha1.WorkflowTemplate") == []
    assert validate(cron, "io.argoproj.workflow.v1alpha1.CronWorkflow") == []
    assert cron["spec"]["workflowSpec"]["workflowTemplateRef"]["name"] == template["metadata"]["name"]


def test_alert_rules_pass_promtool_and_use_metrics_launchbay_exports() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: it comes with Debian's prometheus package (scripts/setup.sh)")
    res = subprocess.run(
        [promtool, "check", "rules", str(INFRA / "prometheus" / "rules.yml")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    text = (INFRA / "prometheus" / "rules.yml").read_text() + (
        INFRA / "grafana" / "launchbay.json"
    ).read_text()
    sources = "".join(p.read_text() for p in (ROOT / "rollout").rglob("*.py"))
    for name in set(re.findall(r"launchbay_[a-z_]+", text)):
        base = re.sub(r"_(total|sum|count|bucket)$", "", name)
        assert f'"{base}"' in sources, f"{name} is used in infra/ but launchbay does not export it"


def test_the_dashboard_has_the_panels_people_look_at() -> None:
    dash = json.loads((INFRA / "grafana" / "launchbay.json").read_text())
    titles = " | ".join(p["title"] for p in dash["panels"])
    for words in ("latency", "error rate", "weights", "agreement"):
        assert words in titles
    assert all(t["expr"] for p in dash["panels"] for t in p["targets"])
