"""The Helm chart, checked by helm itself (lint, template) and against what the code calls."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from launchbay.rollout.targets.kube_api import RBAC
from launchbay.rollout.targets.validate import problems

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "launchbay"
DIGEST = "sha256:" + "ab" * 32
TEAMS = "teams={team-a,team-b}"


@pytest.fixture(scope="module")
def helm() -> str:
    res = subprocess.run(
        ["bash", str(REPO / "scripts" / "helm.sh")], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, f"could not fetch helm: {res.stderr[-2000:]}"
    return res.stdout.strip().splitlines()[-1]


def _template(helm: str, *sets: str) -> subprocess.CompletedProcess[str]:
    argv = [helm, "template", "launchbay", str(CHART), "--namespace", "launchbay", "--include-crds"]
    for s in sets:
        argv += ["--set", s]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def _docs(helm: str, *sets: str) -> list[dict[str, Any]]:
    res = _template(helm, f"image.digest={DIGEST}", TEAMS, *sets)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def test_helm_lint_passes(helm: str) -> None:
    res = subprocess.run(
        [helm, "lint", str(CHART), "--strict", "--set", f"image.digest={DIGEST}", "--set", TEAMS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    ("digest", "says"),
    [
        (None, "image.digest is required"),
        ("v0.1.0", "expected sha256: and 64 hex digits"),
        ("sha256:abc", "expected sha256: and 64 hex digits"),
    ],
)
def test_the_controller_image_is_taken_by_digest_only(helm: str, digest: str | None, says: str) -> None:
    res = _template(helm, *([f"image.digest={digest}"] if digest else []))
    assert res.returncode != 0 and says in res.stderr, res.stderr


def test_every_object_is_valid_and_every_image_is_a_digest(helm: str) -> None:
    docs = _docs(helm, "metrics.podMonitor=true", "prometheus.caConfigMap=prometheus-ca")
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "CustomResourceDefinition",
        "Deployment",
        "Job",
        "PodMonitor",
        "PrometheusRule",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    for d in docs:
        if d["kind"] not in ("PodMonitor", "PrometheusRule", "CustomResourceDefinition"):
            assert problems(d) == [], (d["kind"], d["metadata"]["name"], problems(d))
        for pod in _pods(d):
            for c in pod["containers"]:
                assert c["image"] == f"ghcr.io/launchbay/launchbay@{DIGEST}", c["image"]
                assert c["securityContext"]["readOnlyRootFilesystem"] is True


def _pods(d: dict[str, Any]) -> list[dict[str, Any]]:
    if d["kind"] in ("Deployment", "Job"):
        return [d["spec"]["template"]["spec"]]
    return []


def test_each_team_namespace_gets_exactly_the_calls_the_targets_make(helm: str) -> None:
    docs = _docs(helm)
    roles = {
        d["metadata"]["namespace"]: d
        for d in docs
        if d["kind"] == "Role" and d["metadata"]["name"] == "launchbay-controller"
    }
    assert set(roles) == {"team-a", "team-b"}
    expected = {**{k: set(v) for k, v in RBAC.items()}, ("", "configmaps"): {"create", "patch"}}
    for role in roles.values():
        got: dict[tuple[str, str], set[str]] = {}
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    got.setdefault((group, resource), set()).update(rule["verbs"])
        assert got == expected
    bindings = [
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "launchbay-controller"
    ]
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b"}
    assert all(
        b["subjects"]
        == [{"kind": "ServiceAccount", "name": "launchbay-controller", "namespace": "launchbay"}]
        for b in bindings
    )


def test_the_controller_is_probed_on_its_loop_and_serves_the_teams_it_has_roles_in(helm: str) -> None:
    docs = _docs(helm, "prometheus.caConfigMap=prometheus-ca", "prometheus.url=https://prom:9090")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    assert c["command"][:2] == ["launchbay", "cluster-controller"]
    assert [a for a in c["command"] if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e.get("value") for e in c["env"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert env["LAUNCHBAY_PROMETHEUS_CA_FILE"] == f"{mounts['prometheus-ca']}/ca.crt"
    assert env["LAUNCHBAY_PROMETHEUS_URL"] == "https://prom:9090"
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:3] == [
        "launchbay",
        "ledger",
        "upgrade",
    ]


def test_the_ledger_is_never_part_of_what_uninstall_deletes(helm: str) -> None:
    """Helm deletes what it rendered (never CRDs): no namespace, no team workload, no database."""
    docs = _docs(helm)
    kinds = {d["kind"] for d in docs}
    assert "Namespace" not in kinds and "PersistentVolumeClaim" not in kinds and "StatefulSet" not in kinds
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert [c["metadata"]["name"] for c in crds] == ["models.launchbay.io"]
    assert (CHART / "crds" / "launchbay.io_models.yaml").exists()  # crds/: installed, never deleted by helm
