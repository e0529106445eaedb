"""The cluster targets' HTTPRoute and Knative Service against a real Kubernetes API server.

`apiextensions-apiserver` (Kubernetes' own code, built by scripts/apiserver.sh) on etcd, with the
Gateway API and Knative CRDs launchbay ships: server-side apply, the server's defaulting, field
managers and CEL rules are the real ones. Built-in kinds (Deployments, Services) are not served
by it; their side of a rollout stays with tests/kube_fake.py. A failed build fails these tests
with its reason; they never skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import RealApiServer, running
from rollout_fakes import cluster_config

from launchbay.errors import EnvironmentProblem
from launchbay.rollout.targets import manifests
from launchbay.rollout.targets.base import Routes
from launchbay.rollout.targets.knative import KnativeTarget
from launchbay.rollout.targets.kube_api import Api, api_client
from launchbay.rollout.targets.kubernetes import KubernetesTarget
from launchbay.rollout.targets.validate import problems

pytestmark = [pytest.mark.slow, pytest.mark.linux_only("the CRD API server here is built for Linux")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApiServer]:
    with running(tmp_path_factory.mktemp("apiserver")) as api:
        yield api


def _route(server: RealApiServer, name: str) -> dict[str, Any]:
    with server.client() as http:
        res = http.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/ml/httproutes/{name}")
    assert res.status_code == 200, res.text
    doc: dict[str, Any] = res.json()
    return doc


def _kube(server: RealApiServer, model: str) -> KubernetesTarget:
    cfg = cluster_config("kubernetes", server.kubeconfig)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": model})})
    return KubernetesTarget(cfg, Api(api_client(cfg)))


def test_weights_and_the_shadow_mirror_are_applied_defaulted_and_read_back(server: RealApiServer) -> None:
    target = _kube(server, "weights")
    one, two = target.backend("1"), target.backend("2")
    target.set_routes(Routes(stable=one, canary=two, mirror=True))
    assert target.routes() == Routes(stable=one, canary=two, mirror=True)
    rule = _route(server, "weights")["spec"]["rules"][0]
    assert rule["filters"][0]["requestMirror"]["backendRef"]["name"] == "weights-v2"
    for weight in (20, 50):
        target.set_routes(Routes(stable=one, canary=two, canary_weight=weight))
        assert target.routes() == Routes(stable=one, canary=two, canary_weight=weight)
    route = _route(server, "weights")
    rule = route["spec"]["rules"][0]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [("weights-v1", 50), ("weights-v2", 50)]
    assert "filters" not in rule  # the mirror was removed: launchbay owned that field
    # The server's defaults (the CRD's), and launchbay as the only field manager.
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert {m["manager"] for m in route["metadata"]["managedFields"]} == {"launchbay"}
    target.set_routes(Routes(stable=two))
    assert target.routes() == Routes(stable=two)


def test_a_change_by_another_field_manager_is_a_conflict_launchbay_explains(server: RealApiServer) -> None:
    target = _kube(server, "conflict")
    one, two = target.backend("1"), target.backend("2")
    target.set_routes(Routes(stable=one, canary=two, canary_weight=20))
    edited = manifests.http_route(target.cfg, Routes(stable=one, canary=two, canary_weight=0))
    with server.client() as http:  # someone moves the weights by hand, taking the fields over
        res = http.patch(
            "/apis/gateway.networking.k8s.io/v1/namespaces/ml/httproutes/conflict",
            params={"fieldManager": "kubectl-edit", "force": "true"},
            content=json.dumps(edited),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
    assert res.status_code == 200, res.text
    with pytest.raises(EnvironmentProblem) as refused:
        target.set_routes(Routes(stable=one, canary=two, canary_weight=50))
    text = str(refused.value)
    assert "conflict applying" in text and "(409)" in text and "kubectl-edit" in text
    assert "--force-conflicts --field-manager launchbay" in text
    assert target.routes().canary_weight == 0  # nothing was overwritten silently


def test_a_cel_rule_the_shipped_schema_cannot_check_is_refused_by_the_server_clearly(
    server: RealApiServer,
) -> None:
    target = _kube(server, "cel")
    route = manifests.http_route(target.cfg, Routes(stable=target.backend("1")))
    route["spec"]["rules"][0]["filters"] = [{"type": "RequestMirror"}]  # no requestMirror
    assert problems(route) == []  # OpenAPI alone accepts it: the rule is CEL (x-kubernetes-validations)
    with pytest.raises(EnvironmentProblem) as refused:
        target.api.apply(route)
    text = str(refused.value)
    assert "refused" in text and "(422)" in text and "spec.rules[0].filters[0]" in text
    assert "requestMirror" in text
    assert target.api.get("gateway.networking.k8s.io/v1", "HTTPRoute", "ml", "cel") is None


def test_pins_and_sticky_cookies_are_rules_the_server_accepts_beside_the_split(server: RealApiServer) -> None:
    """Header matches (a pin per version, a Cookie regex per version of this release) outrank the
    path-only weighted rule; backendRef filters set the cookie; read back, the split is unchanged."""
    target = _kube(server, "sticky")
    routing = target.cfg.rollout.routing.model_copy(update={"sticky": "cookie"})
    target.cfg = target.cfg.model_copy(
        update={"rollout": target.cfg.rollout.model_copy(update={"routing": routing})}
    )
    one, two = target.backend("1"), target.backend("2")
    routes = Routes(stable=one, canary=two, canary_weight=25)
    target.set_routes(routes)
    assert target.routes() == routes
    rules = _route(server, "sticky")["spec"]["rules"]
    by_header = {
        (h["name"], h["value"]): r["backendRefs"][0]["name"]
        for r in rules
        for m in r["matches"]
        for h in m.get("headers", [])
    }
    assert by_header[("X-Launchbay-Pin", "candidate")] == by_header[("X-Launchbay-Pin", "v2")] == "sticky-v2"
    assert by_header[("X-Launchbay-Pin", "stable")] == by_header[("X-Launchbay-Pin", "1")] == "sticky-v1"
    cookies = {v: name for (h, v), name in by_header.items() if h == "Cookie"}
    import re

    for pattern, name in cookies.items():
        version = name.removeprefix("sticky-v")
        assert re.fullmatch(pattern, f"a=b; launchbay-version=v{version}.c2; c=d")
        assert not re.fullmatch(pattern, f"launchbay-version=v{version}.c3")  # another release's
    weighted = manifests.weighted_rule(_route(server, "sticky"))
    modifiers = [b["filters"][0]["responseHeaderModifier"] for b in weighted["backendRefs"]]
    set_cookies = [m["add"][0]["value"] for m in modifiers]
    assert [c.split(";")[0] for c in set_cookies] == ["launchbay-version=v1.c2", "launchbay-version=v2.c2"]
    target.set_routes(Routes(stable=two))
    assert target.routes() == Routes(stable=two)
    assert len(_route(server, "sticky")["spec"]["rules"]) == 2  # the split and the one pin left


def test_knative_revisions_take_traffic_percentages_on_the_real_server(server: RealApiServer) -> None:
    cfg = cluster_config("knative", server.kubeconfig)
    pushed = "ghcr.io/launchbay/fraud-detector@sha256:{}".format
    target = KnativeTarget(cfg, Api(api_client(cfg)), lambda _m, v: pushed(v * 64))
    target.deploy("fraud-detector", "1")
    target.set_routes(Routes(stable=target.backend("1")))
    target.deploy("fraud-detector", "2")
    target.set_routes(Routes(stable=target.backend("1"), canary=target.backend("2"), canary_weight=20))
    assert target.routes().canary_weight == 20 and target.routes().stable == target.backend("1")
    with server.client() as http:
        svc = http.get("/apis/serving.knative.dev/v1/namespaces/ml/services/fraud-detector").json()
    assert svc["spec"]["traffic"] == [
        {"revisionName": "fraud-detector-v1", "percent": 80, "tag": "v1"},
        {"revisionName": "fraud-detector-v2", "percent": 20, "tag": "v2"},
        {"revisionName": "fraud-detector-v1", "percent": 0, "tag": "stable"},
        {"revisionName": "fraud-detector-v2", "percent": 0, "tag": "candidate"},
    ]
    container = svc["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == pushed("2" * 64)
    target.set_routes(Routes(stable=target.backend("2")))
    assert target.routes() == Routes(stable=target.backend("2"))


def _model(name: str, **spec: Any) -> dict[str, Any]:
    from people import public

    return {
        "apiVersion": "launchbay.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {
            "config": {"model": {"name": name, "train": "m:t"}, **spec.pop("config", {})},
            "trustedKeys": [public("alice").read_text()],
            **spec,
        },
    }


def _apply(
    server: RealApiServer, doc: dict[str, Any], manager: str, force: bool = False, status: bool = False
) -> Any:
    path = f"/apis/launchbay.io/v1alpha1/namespaces/ml/models/{doc['metadata']['name']}" + (
        "/status" if status else ""
    )
    with server.client() as http:
        return http.patch(
            path,
            params={"fieldManager": manager, "force": str(force).lower()},
            content=json.dumps(doc),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )


def test_the_model_resource_refuses_what_a_cluster_cannot_run(server: RealApiServer) -> None:
    res = _apply(server, _model("local-one", config={"rollout": {"target": "local"}}), "argocd")
    assert res.status_code == 422 and "spec.config.rollout.target" in res.text and "kubernetes" in res.text, (
        res.text
    )
    bad_key = _model("bad-key")
    bad_key["spec"]["trustedKeys"] = ["not a key"]
    res = _apply(server, bad_key, "argocd")
    assert res.status_code == 422 and "expected a PEM public key" in res.text, res.text
    res = _apply(server, _model("bad-version", release={"version": "1; rm -rf /"}), "argocd")
    assert res.status_code == 422 and "spec.release.version" in res.text, res.text


def test_a_models_status_is_a_subresource_and_its_release_request_has_one_owner(
    server: RealApiServer,
) -> None:
    assert _apply(server, _model("owned", release={"version": "2"}), "argocd").status_code in (200, 201)
    status = {
        "apiVersion": "launchbay.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "owned", "namespace": "ml"},
        "status": {"phase": "canary", "version": "2", "canaryWeight": 20},
    }
    res = _apply(server, status, "launchbay-controller", force=True, status=True)
    assert res.status_code == 200, res.text
    assert res.json()["spec"]["release"] == {"version": "2"}  # a status write never touches the spec
    # The GitOps tool applies its spec again: the controller's status stays.
    again = _apply(server, _model("owned", release={"version": "2"}), "argocd").json()
    assert again["status"]["phase"] == "canary"
    # Someone else asking for another version conflicts with the GitOps tool's ownership.
    res = _apply(server, _model("owned", release={"version": "3"}), "kubectl")
    assert res.status_code == 409 and "argocd" in res.text, res.text


def test_the_model_a_team_renders_is_accepted_as_rendered(server: RealApiServer) -> None:
    """infra/base/model.yaml is what `launchbay render --target cluster` writes for the example."""
    import yaml

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "infra" / "base" / "model.yaml").read_text())
    doc["metadata"]["namespace"] = "ml"
    res = _apply(server, doc, "kubectl")
    assert res.status_code in (200, 201), res.text
    stored = res.json()["spec"]
    assert stored["config"] == doc["spec"]["config"]  # nothing pruned or defaulted away
    assert stored["trustedKeys"] == doc["spec"]["trustedKeys"]
