"""launchbay installed once in a cluster, shared by two teams, carried to promotion, upgraded, removed.

The platform engineer's steps, in the documented order, against a test cluster whose custom
resources are served by the real apiextensions-apiserver (launchbay's Model CRD: schema, status
subresource, server-side apply) and whose built-in kinds and RBAC by tests/kube_cluster.py:

  namespaces and the settings Secret -> the chart rendered by `helm template` -> its upgrade Job's
  command (the ledger's schema) -> its objects applied -> the controller's Deployment command run
  as two separate processes under the controller's service account (one leads by the Lease)

Each team onboards a model with a Model object in its own namespace (its config, trusted key and
approver as data) and asks for releases by changing `spec.release` (what a GitOps tool applies).
Metrics come from a real Prometheus scraping an exporter that counts healthy traffic for each
Deployment the controller made. The ledger is a real PostgreSQL. In between the two teams'
releases, launchbay is upgraded: the Job brings the ledger to a new schema revision while the
controllers run. Last, `helm uninstall`: the chart's objects go; the models' workloads, their
Model objects and the ledger stay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from apiserver import RealApiServer, running
from kube_cluster import Cluster, serve
from people import approvers, key, public
from projects import FAST_ROLLOUT

from launchbay import procs
from launchbay.checks import provenance
from launchbay.checks.approvals import load_private, sign
from launchbay.checks.signature import generate_keypair, tree_digest
from launchbay.checks.signature import sign as sign_model
from launchbay.home import Home
from launchbay.rollout.engine import decisions
from launchbay.rollout.ledger import migrations
from launchbay.rollout.ledger.store import SqlLedger

pytestmark = [pytest.mark.slow, pytest.mark.linux_only("the CRD API server here is built for Linux")]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "launchbay"
DIGEST = "sha256:" + "7" * 64
TEAMS = {"team-a": "churn", "team-b": "fraud"}


def helm() -> str:
    res = subprocess.run(
        ["bash", str(REPO / "scripts" / "helm.sh")], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, f"could not fetch helm: {res.stderr[-2000:]}"
    return res.stdout.strip().splitlines()[-1]


def rendered(*values: str) -> list[dict[str, Any]]:
    argv = [
        helm(),
        "template",
        "launchbay",
        str(CHART),
        "--namespace",
        "launchbay",
        "--include-crds",
        "--set",
        f"image.digest={DIGEST}",
        "--set",
        "teams={team-a,team-b}",
        *values,
    ]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApiServer]:
    with running(tmp_path_factory.mktemp("apiserver")) as api:
        yield api


class Traffic:
    """Healthy requests to every version the controller deployed, as the pods' metrics would count
    them (namespace, model and version labels as the chart's PodMonitor relabels them)."""

    def __init__(self, cluster: Cluster) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

        self.cluster = cluster
        self.registry = CollectorRegistry()
        labels = ["namespace", "model", "version"]
        self.requests = Counter(
            "bentoml_service_request", "", [*labels, "endpoint", "http_response_code"], registry=self.registry
        )
        self.latency = Histogram(
            "bentoml_service_request_duration_seconds", "", [*labels, "endpoint"], registry=self.registry
        )
        self.predictions = Counter(
            "launchbay_predictions", "", [*labels, "predicted_class"], registry=self.registry
        )
        self.score = Histogram("launchbay_prediction_score", "", labels, registry=self.registry)
        self.server, _ = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.port = self.server.server_address[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(0.05):
            for (_, plural, ns, _), obj in list(self.cluster.objects.items()):
                if plural != "deployments":
                    continue
                lab = obj["metadata"].get("labels", {})
                model, version = lab.get("app.kubernetes.io/name"), lab.get("launchbay.io/version")
                if not model or not version:
                    continue
                for i in range(2):
                    self.requests.labels(ns, model, version, "/predict", "200").inc()
                    self.latency.labels(ns, model, version, "/predict").observe(0.004)
                    self.predictions.labels(ns, model, version, str(i % 2)).inc()
                    self.score.labels(ns, model, version).observe(0.5)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.server.shutdown()
        self.server.server_close()


def _signed_version(root: Path, model: str, version: str, private: Path) -> Path:
    d = root / f"{model}-v{version}"
    d.mkdir(parents=True)
    (d / "model.bin").write_bytes(f"{model} {version}".encode())
    provenance.write(
        d,
        provenance.statement(
            model=model,
            version=version,
            model_digest=tree_digest(d),
            git_commit="c0ffee",
            data_digest="d" * 64,
            run_id=f"run-{version}",
            tracking_uri="test",
            reports={},
            gates={"data": "PASS", "model": "PASS"},
        ),
    )
    sign_model(d, private)
    return d


def _model_object(ns: str, name: str, team_key: Path, approver: str, release: str | None) -> dict[str, Any]:
    rollout = {k: v for k, v in FAST_ROLLOUT.items() if k != "grace_period"}
    doc: dict[str, Any] = {
        "apiVersion": "launchbay.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "config": {
                "model": {"name": name, "train": "model:train"},
                "data": {"path": "data.csv", "features": {"x": {"type": "float"}}},
                "rollout": {**rollout, "approval": {"required": True}},
                "kubernetes": {"image": f"ghcr.io/{ns}/{name}:{{version}}"},
            },
            "trustedKeys": [team_key.read_text()],
            "approvers": {approver: public(approver).read_text()},
        },
    }
    if release is not None:
        doc["spec"]["release"] = {"version": release, "author": "argocd"}
    return doc


def _wait(what: str, check: Any, timeout: float, logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    tails = "\n".join(f"--- {p.name}\n{procs.tail(p, 40)}" for p in logs)
    raise AssertionError(f"{what} within {timeout} s\n{tails}")


def test_two_teams_share_one_installation_from_install_through_upgrade_to_uninstall(
    real: RealApiServer, tmp_path: Path, empty_postgres_url: str
) -> None:
    from launchbay.config import LaunchbayConfig
    from launchbay.registry import MlflowRegistry
    from launchbay.rollout.local.prometheus import LocalPrometheus
    from launchbay.rollout.operator.resource import Settings, onboard
    from launchbay.rollout.targets import images

    docs = rendered()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    hooks = [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]
    assert [h["kind"] for h in hooks] == ["Job"]
    controller = by_kind["Deployment"][0]["spec"]["template"]["spec"]
    container = controller["containers"][0]
    assert container["image"] == f"ghcr.io/launchbay/launchbay@{DIGEST}"  # by digest, never a tag

    with serve(real) as cluster:
        # 1. Namespaces and the settings Secret come first (the chart refers to them).
        for ns in ("launchbay", *TEAMS):
            cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        home, mlflow_db = tmp_path / "home", tmp_path / "mlflow.db"
        settings = {
            "LAUNCHBAY_LEDGER_URL": empty_postgres_url,
            "MLFLOW_TRACKING_URI": f"sqlite:///{mlflow_db}",
        }
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "launchbay-settings", "namespace": "launchbay"},
                "stringData": settings,
            }
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LAUNCHBAY_", "MLFLOW_"))},
            **settings,
            "LAUNCHBAY_HOME": str(home),
        }

        # 2. The install Job (of the previous launchbay: its schema was revision 0001).
        job = hooks[0]["spec"]["template"]["spec"]["containers"][0]
        assert job["command"][:3] == ["launchbay", "ledger", "upgrade"]
        bin_dir = Path(sys.executable).parent
        done = subprocess.run(
            [str(bin_dir / job["command"][0]), *job["command"][1:], "--revision", "0001"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"from": None, "to": "0001"}

        # 3. The chart's objects (CRDs were established with the server; applied again here).
        for d in docs:
            if d not in hooks:
                cluster.apply(d)
        crd = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "models.launchbay.io")
        assert crd is not None

        # 4. The registry: each team's versions, signed with the team's own key, images pushed.
        reg_cfg = LaunchbayConfig.model_validate(
            {
                "model": {"name": "x", "train": "m:t"},
                "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
                "mlflow": {"tracking_uri": settings["MLFLOW_TRACKING_URI"]},
            }
        )
        registry = MlflowRegistry(reg_cfg, Home(home).ensure())
        team_keys = {}
        for ns, model in TEAMS.items():
            private, pub = generate_keypair(tmp_path / "keys" / ns)
            team_keys[ns] = pub
            registry.client.create_registered_model(model)  # type: ignore[attr-defined]
            for v in ("1", "2"):
                registry.client.create_model_version(  # type: ignore[attr-defined]
                    model, source=str(_signed_version(tmp_path / "models", model, v, private))
                )
                registry.tag(model, v, images.IMAGE_TAG, f"ghcr.io/{ns}/{model}@sha256:{v * 64}")

        # 5. Prometheus, the controller's Prometheus, scraping the models' metrics.
        traffic = Traffic(cluster)
        prometheus = LocalPrometheus(Home(tmp_path / "prometheus-home").ensure())
        started: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []
        try:
            prometheus_url = prometheus.ensure()
            prometheus.announce("models", traffic.port, kind="exporter")

            # 6. Two replicas of the controller's Deployment, each a process under its service account.
            token = cluster.service_account_token("launchbay", controller["serviceAccountName"])
            kubeconfig = cluster.kubeconfig(tmp_path / "controller.kubeconfig", token, "launchbay")
            argv = [
                a
                for a in container["command"]
                if not a.startswith(("--port", "--interval", "--lease-seconds"))
            ]
            assert argv[:2] == ["launchbay", "cluster-controller"]
            assert {"--namespace=team-a", "--namespace=team-b"} <= set(argv)
            ports = []
            for replica in ("a", "b"):
                port = procs.free_port()
                ports.append(port)
                log = tmp_path / f"controller-{replica}.log"
                logs.append(log)
                with log.open("wb") as out:
                    started.append(
                        subprocess.Popen(
                            [
                                str(bin_dir / argv[0]),
                                *argv[1:],
                                f"--port={port}",
                                "--interval=0.5",
                                "--lease-seconds=3",
                                f"--kubeconfig={kubeconfig}",
                            ],
                            env={
                                **env,
                                "LAUNCHBAY_HOME": str(tmp_path / f"replica-{replica}"),
                                "POD_NAME": f"launchbay-controller-{replica}",
                                "POD_NAMESPACE": "launchbay",
                                "LAUNCHBAY_PROMETHEUS_URL": prometheus_url,
                            },
                            stdout=out,
                            stderr=subprocess.STDOUT,
                        )
                    )

            import httpx

            def readiness() -> list[dict[str, Any]] | None:
                try:
                    got = [httpx.get(f"http://127.0.0.1:{p}/readyz", timeout=2).json() for p in ports]
                except (httpx.HTTPError, ValueError):
                    return None
                return got if all(g["ready"] for g in got) and sum(g["leading"] for g in got) == 1 else None

            ready = _wait("both replicas ready, exactly one leading", readiness, 60, logs)
            leader = next(i for i, g in enumerate(ready) if g["leading"])

            # 7. Each team onboards its model and asks for version 1, then version 2.
            def status(ns: str) -> dict[str, Any]:
                got = cluster.get("launchbay.io/v1alpha1", "Model", ns, TEAMS[ns])
                return (got or {}).get("status") or {}

            def released(ns: str, version: str, phase: str) -> bool:
                s = status(ns)
                return s.get("version") == version and s.get("phase") == phase

            def approve(ns: str) -> None:
                model = TEAMS[ns]
                obj = cluster.get("launchbay.io/v1alpha1", "Model", ns, model)
                assert obj is not None
                admin = cluster.kubeconfig(tmp_path / "admin.kubeconfig", cluster.admin_token)
                cfg = onboard(obj, Settings(tmp_path / "manager", str(admin), prometheus_url=prometheus_url))
                from launchbay.rollout import wiring

                ledger = SqlLedger(empty_postgres_url)
                ctx = wiring.rollout(cfg.config, Home(tmp_path / "manager-home").ensure(), ledger)
                pending = decisions.pending(ctx, model)
                made = decisions.statement_for(ctx, pending, "approve", "alice")
                decisions.approve(ctx, sign(made, load_private(key("alice"))))  # the controller moves traffic

            approvers("alice")
            for ns, model in TEAMS.items():
                cluster.apply(_model_object(ns, model, team_keys[ns], "alice", "1"), manager="argocd")
            for ns in TEAMS:
                _wait(f"{ns}: version 1 serving", lambda ns=ns: released(ns, "1", "promoted"), 90, logs)

            def release_two(ns: str) -> None:
                cluster.apply(_model_object(ns, TEAMS[ns], team_keys[ns], "alice", "2"), manager="argocd")
                _wait(
                    f"{ns}: version 2 awaiting approval",
                    lambda: released(ns, "2", "awaiting-approval"),
                    120,
                    logs,
                )
                assert status(ns)["waitingFor"] == "a release manager's approval"
                approve(ns)
                _wait(f"{ns}: version 2 promoted", lambda: released(ns, "2", "promoted"), 60, logs)

            release_two("team-a")
            # 8. An upgrade of launchbay: its Job adds schema revision 0002 while the controllers run.
            upgraded = subprocess.run(
                [str(bin_dir / "launchbay"), "ledger", "upgrade", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert upgraded.returncode == 0, upgraded.stderr
            assert json.loads(upgraded.stdout) == {"from": "0001", "to": migrations.head()}
            # The leader dies (no hand-back): the standby takes the Lease once it expires and
            # carries team B's release.
            os.kill(started[leader].pid, 9)
            started[leader].wait(10)
            release_two("team-b")
            _wait(
                "the standby leading",
                lambda: httpx.get(f"http://127.0.0.1:{ports[1 - leader]}/readyz", timeout=2).json()[
                    "leading"
                ],
                10,
                logs,
            )

            # Each team's objects stay in its namespace; the routes send everything to version 2.
            for ns, model in TEAMS.items():
                route = cluster.get("gateway.networking.k8s.io/v1", "HTTPRoute", ns, model)
                assert route is not None, ns
                refs = [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]]
                assert refs == [f"{model}-v2"], (ns, refs)
                assert cluster.find("deployments", ns, f"{model}-v2") is not None
                assert cluster.find("configmaps", ns, f"{model}-trusted-keys") is not None
                other = next(m for n, m in TEAMS.items() if n != ns)
                assert cluster.find("deployments", ns, f"{other}-v2") is None
            # The controller's service account did only what its Roles allow: nothing was denied,
            # and what they do not allow is refused.
            controller_user = "system:serviceaccount:launchbay:launchbay-controller"
            assert not [d for d in cluster.denied if controller_user in d], cluster.denied
            with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {token}"}) as http:
                assert http.get("/api/v1/namespaces/team-a/secrets").status_code == 403
                assert (
                    http.delete("/apis/launchbay.io/v1alpha1/namespaces/team-a/models/churn").status_code
                    == 403
                )

            # 9. helm uninstall: the chart's objects are deleted (never CRDs); the controllers stop.
            for proc in started:
                assert procs.stop(proc.pid) == [], f"pid {proc.pid} survived"
                proc.wait(10)
            for d in docs:
                if d not in hooks and d["kind"] != "CustomResourceDefinition":
                    assert cluster.delete(d) == 200, d["metadata"]["name"]
            for ns, model in TEAMS.items():
                assert cluster.find("deployments", ns, f"{model}-v2") is not None  # still serving
                assert cluster.get("gateway.networking.k8s.io/v1", "HTTPRoute", ns, model) is not None
                assert cluster.get("launchbay.io/v1alpha1", "Model", ns, model) is not None
            ledger = SqlLedger(empty_postgres_url)
            assert [r.phase.value for r in ledger.releases("churn")] == ["promoted", "promoted"]
            assert [r.phase.value for r in ledger.releases("fraud")] == ["promoted", "promoted"]
            assert all(ledger.verify_chain(m)[1] is None for m in TEAMS.values())
        finally:
            for proc in started:
                procs.stop(proc.pid)
            traffic.stop()
            prometheus.stop()
