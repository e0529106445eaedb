"""The cluster controller's parts: a Model turned into a config, its status, the Lease."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kube_cluster import serve
from people import public

from launchbay.errors import ConfigError
from launchbay.rollout.operator.resource import Settings, onboard, status


def _model(**config: Any) -> dict[str, Any]:
    return {
        "apiVersion": "launchbay.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "churn", "namespace": "team-a", "uid": "u", "generation": 3},
        "spec": {
            "config": {
                "model": {"train": "m:t"},
                "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
                **config,
            },
            "trustedKeys": [public("alice").read_text()],
            "approvers": {"alice": public("alice").read_text()},
        },
    }


def test_a_model_becomes_a_config_confined_to_its_namespace(tmp_path: Path) -> None:
    o = onboard(_model(), Settings(tmp_path, kubeconfig="/k", prometheus_url="http://p:9090"))
    cfg = o.config
    assert (cfg.model.name, cfg.kubernetes.namespace, cfg.rollout.target) == ("churn", "team-a", "kubernetes")
    assert cfg.kubernetes.kubeconfig == "/k" and cfg.rollout.prometheus_url == "http://p:9090"
    assert cfg.kubernetes.trusted_keys_configmap == "churn-trusted-keys"
    assert [Path(k).read_text() for k in cfg.signing.trusted_keys] == list(o.keys.values())
    assert Path(cfg.rollout.approval.approvers["alice"]).read_text() == public("alice").read_text()
    assert (
        o.digest
        == onboard(_model(), Settings(tmp_path, kubeconfig="/k", prometheus_url="http://p:9090")).digest
    )
    assert o.requested is None


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"rollout": {"target": "local"}}, "a cluster runs kubernetes or knative"),
        ({"kubernetes": {"namespace": "team-b"}}, "live in the Model's namespace (team-a)"),
        ({"kubernetes": {"kubeconfig": "/root/.kube/config"}}, "uses its own credentials"),
        ({"rollout": {"ledger_url": "sqlite:////tmp/x.db"}}, "the installation's ledger"),
        ({"model": {"name": "other", "train": "m:t"}}, "a Model's name is its model's"),
        ({"rollout": {"steps": "fast"}}, "spec.config: rollout.steps"),
    ],
)
def test_what_a_team_cannot_ask_for_is_named(tmp_path: Path, config: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match="Model team-a/churn") as err:
        onboard(_model(**config), Settings(tmp_path, prometheus_url="http://p:9090"))
    assert says in str(err.value)


def test_the_status_mirrors_the_release_and_says_what_it_waits_for(tmp_path: Path) -> None:
    from rollout_fakes import new_release

    from launchbay.rollout.engine.phases import Phase
    from launchbay.rollout.ledger.store import SqlLedger

    ledger = SqlLedger(f"sqlite:///{tmp_path / 'l.db'}")
    r = new_release(ledger)
    doc = status(r, 3)
    assert doc["phase"] == "pending" and doc["observedGeneration"] == 3
    assert doc["waitingFor"] == "the signature check of the version"
    assert doc["conditions"][0]["status"] == "True"
    ended = status(
        ledger.move(r, Phase.ABORTED, actor="x", action="abort", reason="y"), 3, problem="RBAC says no"
    )
    assert "waitingFor" not in ended and ended["message"] == "RBAC says no"
    assert ended["conditions"][0]["reason"] == "CannotDrive"


def test_one_replica_leads_another_takes_over_only_after_the_lease_expires() -> None:
    from lightkube import Client, KubeConfig

    from launchbay.rollout.operator.leader import LeaderElection

    now = [0.0]
    with serve(None) as cluster:  # type: ignore[arg-type]  # Leases are built-in: no CRD server needed
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "launchbay"}})
        cluster.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "lease", "namespace": "launchbay"},
                "rules": [
                    {
                        "apiGroups": ["coordination.k8s.io"],
                        "resources": ["leases"],
                        "verbs": ["get", "create", "update"],
                    }
                ],
            }
        )
        cluster.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "lease", "namespace": "launchbay"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lease"},
                "subjects": [{"kind": "ServiceAccount", "name": "c", "namespace": "launchbay"}],
            }
        )
        token = cluster.service_account_token("launchbay", "c")

        def replica(name: str, tmp: Path) -> LeaderElection:
            conf = KubeConfig.from_file(cluster.kubeconfig(tmp, token))
            return LeaderElection(
                Client(conf), "launchbay", "launchbay-controller", name, duration=5, monotonic=lambda: now[0]
            )

        import tempfile

        d = Path(tempfile.mkdtemp())
        a, b = replica("a", d / "a"), replica("b", d / "b")
        assert a.try_acquire_or_renew() is True
        assert b.try_acquire_or_renew() is False
        now[0] += 4
        assert a.try_acquire_or_renew() is True  # renewed: b saw it change, its clock restarts
        now[0] += 4
        assert b.try_acquire_or_renew() is False
        now[0] += 6  # a stopped renewing (killed): b's own clock says the record is 6 s old
        assert b.try_acquire_or_renew() is True
        assert a.try_acquire_or_renew() is False  # a is back: it sees b's record, fresh
        b.release()  # a clean stop hands it back: a takes it at once
        assert a.try_acquire_or_renew() is True
        lease = cluster.find("leases", "launchbay", "launchbay-controller")
        assert lease is not None and lease["spec"]["holderIdentity"] == "a"
        assert lease["spec"]["leaseTransitions"] == 2
        assert not cluster.denied


def test_an_undecided_analysis_says_what_it_waits_for_and_until_when(tmp_path: Path) -> None:
    from rollout_fakes import Metrics, world

    from launchbay.rollout.engine import operations
    from launchbay.rollout.operator.loop import _analysis_waits

    w = world(tmp_path)
    w.metrics = Metrics({})  # no samples yet: every check is inconclusive
    c = w.controller()
    release = w.ticks(operations.create(w.ctx, "2", "dana"), 4, c=c)
    assert release.phase.live, release.phase
    said = _analysis_waits(c, release)
    import re

    assert said is not None and re.search(
        r"\(until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, then rollout.on_deadline\)$", said
    ), said


def test_a_monitored_model_is_watched_beside_its_releases_and_its_status_says_what_the_monitor_sees(
    tmp_path: Path,
) -> None:
    from rollout_fakes import ROLLOUT, world

    from launchbay.config import LaunchbayConfig
    from launchbay.home import Home
    from launchbay.rollout.operator.loop import Driven, Operator

    cfg = LaunchbayConfig.model_validate(
        {
            "model": {"name": "fraud-detector", "train": "pkg.mod:train"},
            "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
            "rollout": {**ROLLOUT, "target": "kubernetes"},
            "monitor": {"every": "1h", "retrain": {"on": []}},
        }
    )
    w = world(tmp_path, cfg)
    onboarded = onboard(
        _model(monitor={"every": "1s", "retrain": {"on": []}}),
        Settings(tmp_path, prometheus_url="http://p:9090"),
    )
    driven = Driven(onboarded, w.controller())
    operator = Operator(None, Settings(tmp_path), w.ledger, Home(tmp_path))  # type: ignore[arg-type]
    operator._monitor(driven)  # the first pass starts in its own thread
    assert driven.monitor_pass is not None
    driven.monitor_pass.join(timeout=10)
    said = operator._monitor(driven)
    # The fake registry has no run artefacts: the champion was evaluated without a reference.
    assert said is not None and said.startswith("monitor: v1 has no monitoring reference")
    assert (tmp_path / "monitor" / "team-a" / "churn" / "state.json").exists()
    assert status(None, 1, monitor=said)["monitor"] == said
    first = driven.monitor_pass
    operator._monitor(driven)
    assert driven.monitor_pass is first  # one pass per `every` (an hour here), however often it rounds
    driven.monitor_at -= 3600
    operator._monitor(driven)
    assert driven.monitor_pass is not first  # and the next once it is due
    driven.monitor_pass.join(timeout=10)
