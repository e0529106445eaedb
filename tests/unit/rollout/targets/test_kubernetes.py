"""The cluster targets against a fake API server at the client's HTTP layer: whole rollouts, end states."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import people
import pytest
from kube_fake import FakeApiServer, kubeconfig, serve
from rollout_fakes import PASSED, Clock, FakeRegistry, Metrics, cluster_config, healthy_cluster, pushed

from launchbay.errors import ConfigError, EnvironmentProblem, UsageError
from launchbay.home import Home
from launchbay.pipelines.cluster import rbac
from launchbay.rollout.engine import operations
from launchbay.rollout.engine.controller import Controller
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.reconciler import Reconciler
from launchbay.rollout.engine.release import Release
from launchbay.rollout.factory import make_target
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.targets import images
from launchbay.rollout.targets.base import Routes
from launchbay.rollout.targets.knative import KnativeTarget
from launchbay.rollout.targets.kube_api import RBAC, api_client
from launchbay.rollout.targets.kubernetes import KubernetesTarget
from launchbay.rollout.targets.validate import problems


@pytest.fixture
def fake() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
def url(fake: FakeApiServer) -> Iterator[str]:
    with serve(fake) as u:
        yield u


class Cluster:
    def __init__(
        self, tmp: Path, url: str, kind: str, recorded: tuple[str, ...] = ("1", "2", "3"), **k8s: Any
    ) -> None:
        self.cfg = cluster_config(kind, kubeconfig(tmp / "kubeconfig", url), k8s)
        # CI recorded the pushed digest of each version's image (launchbay record-image).
        self.registry = FakeRegistry({"champion": "1"}, {v: {images.IMAGE_TAG: pushed(v)} for v in recorded})
        self.target: Any = make_target(self.cfg, Home(tmp), None, images.resolver(self.cfg, self.registry))
        self.clock = Clock()
        ledger = SqlLedger(f"sqlite:///{tmp / 'ledger.db'}", clock=self.clock)
        self.ctx = operations.Rollout(self.cfg, Home(tmp), ledger, self.target, self.registry)  # type: ignore[arg-type]
        self.metrics = Metrics(healthy_cluster())
        self.controller = Controller(self.ctx, self.metrics, clock=self.clock, verifier=lambda _c, _r: PASSED)
        # Version 1 serves all traffic, as after an earlier promotion.
        self.target.deploy("fraud-detector", "1")
        self.target.set_routes(Routes(stable=self.target.backend("1")))

    def until(self, release: Release, phase: Phase, limit: int = 60) -> tuple[Release, list[Routes]]:
        seen = []
        for _ in range(limit):
            release = self.controller.tick(release)
            seen.append(self.target.routes())
            self.clock.now += 1
            if release.phase is phase:
                return release, seen
        raise AssertionError(f"never reached {phase}: {release}")


def _route(fake: FakeApiServer) -> dict[str, Any]:
    route = fake.find("httproutes", "fraud-detector")
    assert route is not None
    rule: dict[str, Any] = route["spec"]["rules"][0]
    return rule


def test_kubernetes_rollout_shadow_canary_promotion_then_previous_retired(
    tmp_path: Path, fake: FakeApiServer, url: str
) -> None:
    c = Cluster(tmp_path, url, "kubernetes")
    r = operations.create(c.ctx, "2", "dana")
    r, seen = c.until(r, Phase.AWAITING_APPROVAL)
    assert any("bentoml_service_request_total" in q for q in c.metrics.queries)  # the pods' metrics
    assert c.ctx.ledger.last_evidence(r, "created")["image"] == pushed("2")
    for version in ("1", "2"):  # deployed by the digest CI pushed, never by a tag that can move
        deployment = fake.find("deployments", f"fraud-detector-v{version}")
        assert deployment is not None
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == pushed(version)
    views = {(x.canary_weight, x.mirror) for x in seen}
    assert {(0, True), (20, False), (50, False)} <= views  # read back from the API server
    rule = _route(fake)
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [
        ("fraud-detector-v1", 50),
        ("fraud-detector-v2", 50),
    ]
    r = people.approve(c.ctx, str(r.id), "alice")
    assert [(b["name"], b["weight"]) for b in _route(fake)["backendRefs"]] == [("fraud-detector-v2", 100)]
    assert "filters" not in _route(fake)
    assert fake.find("deployments", "fraud-detector-v1") is not None  # warm for the grace period
    c.clock.now += 60
    c.controller.tick(r)
    assert fake.find("deployments", "fraud-detector-v1") is None
    assert fake.find("horizontalpodautoscalers", "fraud-detector-v1") is None
    for obj in fake.objects.values():  # everything launchbay applied, as stored, is valid
        clean = {k: v for k, v in obj.items() if k != "status"}
        clean["metadata"] = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels")}
        assert problems(clean) == [], obj["kind"]
    assert all(o["metadata"]["managedFields"][0]["manager"] == "launchbay" for o in fake.objects.values())


def test_kubernetes_shadow_uses_a_request_mirror_filter_and_rollback_removes_the_candidate(
    tmp_path: Path, fake: FakeApiServer, url: str
) -> None:
    c = Cluster(tmp_path, url, "kubernetes")
    r = operations.create(c.ctx, "2", "dana")
    r, _ = c.until(r, Phase.SHADOW)
    c.controller.tick(r)
    rule = _route(fake)
    assert rule["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"kind": "Service", "name": "fraud-detector-v2", "port": 3000}},
        }
    ]
    assert [b["name"] for b in rule["backendRefs"]] == ["fraud-detector-v1"]
    operations.rollback(c.ctx, "oncall", "pager")
    Reconciler(c.ctx).converge()  # what the command does next
    assert [b["name"] for b in _route(fake)["backendRefs"]] == ["fraud-detector-v1"]
    assert "filters" not in _route(fake)
    assert (
        fake.find("deployments", "fraud-detector-v2") is None
        and fake.find("services", "fraud-detector-v2") is None
    )
    assert c.registry.aliases["champion"] == "1"


def test_a_deployment_that_never_gets_ready_fails_the_release(
    tmp_path: Path, fake: FakeApiServer, url: str
) -> None:
    fake.broken.add("2")
    c = Cluster(tmp_path, url, "kubernetes")
    c.until(operations.create(c.ctx, "2", "dana"), Phase.FAILED, limit=5)
    assert [b["name"] for b in _route(fake)["backendRefs"]] == ["fraud-detector-v1"]


def test_knative_rollout_moves_traffic_percentages_between_revisions(
    tmp_path: Path, fake: FakeApiServer, url: str
) -> None:
    c = Cluster(tmp_path, url, "knative")
    r = operations.create(c.ctx, "2", "dana")
    r, seen = c.until(r, Phase.AWAITING_APPROVAL)
    assert {x.canary_weight for x in seen} >= {20, 50} and not any(x.mirror for x in seen)
    svc = fake.find("services", "fraud-detector")
    assert svc is not None and svc["apiVersion"] == "serving.knative.dev/v1"
    assert svc["spec"]["traffic"] == [
        {"revisionName": "fraud-detector-v1", "percent": 50, "tag": "v1"},
        {"revisionName": "fraud-detector-v2", "percent": 50, "tag": "v2"},
        # pins (Knative-Serving-Tag: stable|candidate), no share of the split
        {"revisionName": "fraud-detector-v1", "percent": 0, "tag": "stable"},
        {"revisionName": "fraud-detector-v2", "percent": 0, "tag": "candidate"},
    ]
    assert svc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "0"
    assert svc["spec"]["template"]["spec"]["containers"][0]["image"] == pushed("2")
    people.approve(c.ctx, str(r.id), "alice")
    svc = fake.find("services", "fraud-detector")
    assert svc is not None
    # Re-applied to move traffic, the template keeps the image its revision runs.
    assert svc["spec"]["template"]["spec"]["containers"][0]["image"] == pushed("2")
    assert svc["spec"]["traffic"] == [
        {"revisionName": "fraud-detector-v2", "percent": 100, "tag": "v2"},
        {"revisionName": "fraud-detector-v2", "percent": 0, "tag": "stable"},  # a tester's pin
    ]
    operations.rollback(c.ctx, "oncall", "")
    Reconciler(c.ctx).converge()  # what the command does next
    svc = fake.find("services", "fraud-detector")
    assert svc is not None and svc["spec"]["traffic"][0]["revisionName"] == "fraud-detector-v1"
    assert c.registry.aliases["champion"] == "1"


def test_a_version_without_a_recorded_digest_is_not_released_and_nothing_is_applied(
    tmp_path: Path, fake: FakeApiServer, url: str
) -> None:
    c = Cluster(tmp_path, url, "kubernetes", recorded=("1",))
    applied = len(fake.requests)
    with pytest.raises(UsageError) as refused:
        operations.create(c.ctx, "2", "dana")
    assert "no serving image recorded" in str(refused.value)
    assert "launchbay record-image fraud-detector@2 REPOSITORY@sha256:" in str(refused.value)
    assert c.ctx.ledger.releases("fraud-detector") == []
    assert all(method == "GET" for method, _ in fake.requests[applied:])
    assert fake.find("deployments", "fraud-detector-v2") is None
    # Opting out deploys the tag kubernetes.image names (and says so in the evidence).
    (tmp_path / "tags").mkdir()
    t = Cluster(tmp_path / "tags", url, "kubernetes", recorded=("1",), require_digest=False)
    r, _ = t.until(operations.create(t.ctx, "2", "dana"), Phase.SHADOW)
    assert t.ctx.ledger.last_evidence(r, "created")["image"] == "ghcr.io/launchbay/fraud-detector:v2"
    deployment = fake.find("deployments", "fraud-detector-v2")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")


def test_rbac_403_and_field_manager_conflicts_are_explained(
    tmp_path: Path, fake: FakeApiServer, url: str
) -> None:
    c = Cluster(tmp_path, url, "kubernetes")
    fake.forbidden.add(("PATCH", "deployments"))
    with pytest.raises(EnvironmentProblem, match=r"403 Forbidden.*cannot patch resource \"deployments\""):
        c.target.deploy("fraud-detector", "2")
    fake.forbidden.clear()
    # Someone edits the route with another field manager: launchbay reports it, never stomps it.
    route = fake.find("httproutes", "fraud-detector")
    assert route is not None
    route["metadata"]["managedFields"] = [{"manager": "kubectl-edit"}]
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 7
    with pytest.raises(EnvironmentProblem, match=r"conflict.*kubectl-edit.*Another field manager"):
        c.target.set_routes(Routes(stable=c.target.backend("1")))


def test_unreachable_api_server_and_missing_kubeconfig_are_clear(tmp_path: Path) -> None:
    from harness import closed_port

    cfg = cluster_config("kubernetes", kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{closed_port()}"))
    target = make_target(cfg, Home(tmp_path))
    with pytest.raises(EnvironmentProblem, match=r"API server at http://127\.0\.0\.1:\d+ is unreachable"):
        target.routes()
    missing = cluster_config("kubernetes", tmp_path / "nope")
    with pytest.raises(EnvironmentProblem, match="no Kubernetes configuration"):
        api_client(missing)


def test_the_factory_picks_the_configured_target_and_refuses_what_cannot_work(
    tmp_path: Path, url: str
) -> None:
    kc = kubeconfig(tmp_path / "kubeconfig", url)
    assert isinstance(make_target(cluster_config("kubernetes", kc), Home(tmp_path)), KubernetesTarget)
    knative = make_target(cluster_config("knative", kc), Home(tmp_path))
    assert isinstance(knative, KnativeTarget) and knative.processes() is None
    no_prometheus = cluster_config("kubernetes", kc, prometheus_url=None)
    with pytest.raises(UsageError, match=r"needs rollout\.prometheus_url"):
        make_target(no_prometheus, Home(tmp_path))
    unknown = no_prometheus.model_copy(
        update={"rollout": no_prometheus.rollout.model_copy(update={"target": "nomad"})}
    )
    with pytest.raises(ConfigError, match="unknown target 'nomad'; expected one of local, kubernetes"):
        make_target(unknown, Home(tmp_path))


def _verbs_used(requests: list[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
    """RBAC verbs of the requests made: server-side apply needs `create` (absent) and `patch`."""
    used: dict[tuple[str, str], set[str]] = {}
    for method, url_path in requests:
        m = re.match(
            r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/[^/]+/(?P<plural>[^/?]+)(?P<one>/[^?]+)?",
            url_path,
        )
        assert m is not None, f"a request the Role does not cover: {method} {url_path}"
        verbs = {"GET": {"get"}, "DELETE": {"delete"}, "PATCH": {"create", "patch"}}[method]
        if method == "GET" and not m["one"]:
            verbs = {"list"}  # the collection: the shadow join's EndpointSlices
        used.setdefault((m["group"] or "", m["plural"]), set()).update(verbs)
    return used


def test_the_installations_rbac_grants_exactly_the_verbs_whole_lives_of_releases_use(
    tmp_path: Path, fake: FakeApiServer, url: str
) -> None:
    # Kubernetes: shadow -> canary -> promotion -> the previous retired; then a rollback.
    (tmp_path / "k8s").mkdir()
    (tmp_path / "kn").mkdir()
    c = Cluster(tmp_path / "k8s", url, "kubernetes")
    r, _ = c.until(operations.create(c.ctx, "2", "dana"), Phase.AWAITING_APPROVAL)
    r = people.approve(c.ctx, str(r.id), "alice")
    c.clock.now += 60
    c.controller.tick(r)
    c.until(operations.create(c.ctx, "3", "dana"), Phase.SHADOW)
    operations.rollback(c.ctx, "oncall", "pager")
    Reconciler(c.ctx).converge()  # what the command does next
    # Knative: canary -> promotion -> rollback.
    k = Cluster(tmp_path / "kn", url, "knative")
    r, _ = k.until(operations.create(k.ctx, "2", "dana"), Phase.AWAITING_APPROVAL)
    people.approve(k.ctx, str(r.id), "alice")
    operations.rollback(k.ctx, "oncall", "")
    Reconciler(k.ctx).converge()  # what the command does next

    granted = {key: set(verbs) for key, verbs in RBAC.items()}
    assert _verbs_used(fake.requests) == granted
    role = next(
        o
        for o in rbac(cluster_config("kubernetes", tmp_path / "kc"))
        if o["kind"] == "Role" and o["metadata"]["name"] == "fraud-detector-release"
    )
    rendered = {
        (g, res): set(rule["verbs"])
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for res in rule["resources"]
    }
    assert rendered == granted
