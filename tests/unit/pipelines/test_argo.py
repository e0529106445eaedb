"""Submitting to Argo: against a fake Argo server at the HTTP layer, and with none at all."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import people
import pytest
from argo_fake import FakeArgo, serve_argo
from golden import assert_golden

from launchbay.checks import approvals
from launchbay.checks.approvals import SignedStatement
from launchbay.config import load_config
from launchbay.errors import EnvironmentProblem
from launchbay.pipelines.argo import for_argo, submit, validate
from launchbay.rollout.engine.plan import Approval, Plan

REPO_CONFIG = Path(__file__).resolve().parents[3] / "examples" / "fraud-detector" / "launchbay.yaml"


@pytest.fixture
def argo() -> Iterator[str]:
    with serve_argo() as url:
        yield url


def workflow():  # type: ignore[no-untyped-def]
    return for_argo(load_config(REPO_CONFIG), git_commit="abc123")


def test_submit_posts_a_valid_workflow_to_the_namespace(argo: str) -> None:
    name = submit(workflow(), argo, "ml-team", "Bearer s3cret")
    assert name == "fraud-detector-training-x7k2p"
    (req,) = FakeArgo.received
    assert req["path"] == "/api/v1/workflows/ml-team"
    assert req["auth"] == "Bearer s3cret"
    sent = req["body"]["workflow"]
    assert sent["metadata"]["namespace"] == "ml-team"
    assert validate(sent) == []
    params = {p["name"]: p.get("value") for p in sent["spec"]["arguments"]["parameters"]}
    assert params["git-commit"] == "abc123"


def test_server_refusal_is_reported_with_its_message(argo: str) -> None:
    FakeArgo.status = 403
    with pytest.raises(EnvironmentProblem, match=r"refused the workflow.*forbidden"):
        submit(workflow(), argo, "argo", None)


def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EnvironmentProblem, match="unreachable"):
        submit(workflow(), f"http://127.0.0.1:{port}", "argo", None)


def _registered(home: Path, versions: int) -> None:
    """`versions` versions of fraud-detector in the registry, each with its model signature's digest."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    client.create_registered_model("fraud-detector")
    for v in range(1, versions + 1):
        client.create_model_version("fraud-detector", "file:///nowhere", run_id=None)
        client.set_model_version_tag("fraud-detector", str(v), "launchbay.signature_sha256", "d" * 64)


def cluster_config(tmp_path: Path) -> Path:
    """A project whose rollout runs on Kubernetes, so the Argo workflow carries the approval."""
    from kube_fake import kubeconfig
    from projects import write_project

    kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")  # never contacted by these tests
    return write_project(
        tmp_path,
        rows=200,
        overrides={
            "rollout.target": "kubernetes",
            "rollout.prometheus_url": "http://prometheus.monitoring:9090",
            "kubernetes.kubeconfig": str(tmp_path / "kubeconfig"),
        },
    )


def test_the_cluster_workflow_waits_for_approval_on_a_suspend_node(tmp_path: Path) -> None:
    wf = for_argo(load_config(cluster_config(tmp_path)), git_commit="abc123").to_dict()
    assert validate(wf) == []
    templates = {t["name"]: t for t in wf["spec"]["templates"]}
    approval = templates["approval"]
    assert "suspend" in approval
    assert approval["outputs"]["parameters"] == [
        {
            "name": "approval",
            "description": "a release manager's signed approval",
            "valueFrom": {"supplied": {}},
        }
    ]
    tasks = {t["name"]: t for t in templates["pipeline"]["dag"]["tasks"]}
    assert [tasks[n]["depends"] for n in ("release", "approval", "promote")] == [
        "package",
        "release",
        "approval",
    ]
    promote_args = {p["name"]: p["value"] for p in tasks["promote"]["arguments"]["parameters"]}
    assert promote_args["approval"] == "{{tasks.approval.outputs.parameters.approval}}"
    # The local target's workflow stays the six steps the local executor runs.
    assert "approval" not in {t["name"] for t in workflow().to_dict()["spec"]["templates"]}


def test_approve_checks_the_rules_then_resumes_the_argo_approval_node(
    tmp_path: Path, argo: str, lb_home: Path
) -> None:
    from harness import assert_clean_error, lb

    from launchbay.home import Home
    from launchbay.rollout.engine.phases import Phase
    from launchbay.rollout.ledger.store import SqlLedger

    config = cluster_config(tmp_path)
    _registered(lb_home, versions=4)  # what the approval is bound to: version 4's model signature
    ledger = SqlLedger.for_home(Home(lb_home))
    r = ledger.create(
        model="fraud-detector",
        version="4",
        author="dana",
        stable_version="3",
        plan=Plan(steps=(Approval(approvers=("alice", "bob", "dana")),)),
    )
    r = ledger.move(r, Phase.VERIFIED, actor="t", action="verified")
    r = ledger.move(r, Phase.AWAITING_APPROVAL, actor="t", action="step", step_index=0)
    ledger.record(
        r,
        actor="argo-workflow",
        action="argo-workflow",
        evidence={"workflow": "fraud-detector-training-x7k2p", "namespace": "ml-team", "node": "approval"},
    )
    author = lb("approve", str(r.id), "--as", "dana", "--argo-host", argo, cwd=config.parent)
    assert_clean_error(author, 4, "four eyes")
    assert FakeArgo.received == []  # refused before anything reached Argo
    ok = lb("approve", str(r.id), "--as", "alice", "--argo-host", argo, cwd=config.parent)
    assert ok.returncode == 0, ok.stderr
    set_call, resume_call = FakeArgo.received
    assert set_call["path"] == "/api/v1/workflows/ml-team/fraud-detector-training-x7k2p/set"
    supplied = json.loads(json.loads(set_call["body"]["outputParameters"])["approval"])
    signed = SignedStatement.from_dict(supplied)  # what the workflow's promote step checks again
    assert (signed.statement.approver, signed.statement.release_id) == ("alice", r.id)
    assert signed.statement.model_signature == "d" * 64
    assert approvals.verify(signed, people.public("alice").read_bytes()).verdict.ok
    assert resume_call["path"].endswith("/resume")
    assert resume_call["body"]["nodeFieldSelector"] == "displayName=approval"
    FakeArgo.status = 404
    gone = lb("approve", str(r.id), "--as", "bob", "--argo-host", argo, cwd=config.parent)
    assert_clean_error(gone, 3, "refused to set fraud-detector-training-x7k2p (404)")


def test_the_cluster_workflow_matches_its_golden_file(tmp_path: Path) -> None:

    from launchbay.pipelines.argo import to_yaml

    text = to_yaml(for_argo(load_config(cluster_config(tmp_path)), git_commit="abc123").to_dict())
    golden = Path(__file__).resolve().parents[2] / "golden" / "training-workflow-cluster.yaml"
    assert_golden(text, golden)


def test_in_a_cluster_only_the_sign_step_sees_the_signing_key_and_retries_are_for_transient_errors(
    tmp_path: Path,
) -> None:
    cfg = load_config(cluster_config(tmp_path))
    wf = for_argo(cfg, git_commit="abc123").to_dict()
    spec = wf["spec"]
    assert spec["ttlStrategy"] == {"secondsAfterSuccess": 86400, "secondsAfterFailure": 7 * 86400}
    assert spec["podGC"]["strategy"] == "OnWorkflowSuccess"  # failed pods stay for their logs
    assert spec["securityContext"]["runAsNonRoot"] is True
    steps = {t["name"]: t["script"] for t in spec["templates"] if "script" in t}
    assert "sign" in steps and len(steps) > 3
    for name, s in steps.items():
        mounts = {m["name"] for m in s.get("volumeMounts", [])}
        env = {e["name"] for e in s.get("env", [])}
        assert ("signing-key" in mounts) == (name == "sign"), name
        assert ("LAUNCHBAY_SIGNING_KEY" in env) == (name == "sign"), name
        assert s["envFrom"] == [{"secretRef": {"name": cfg.argo.settings_secret}}]
        assert s["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
        assert s["securityContext"]["readOnlyRootFilesystem"] is True
        assert s["image"] == cfg.argo.image
    retries = [t["retryStrategy"] for t in spec["templates"] if "script" in t]
    assert all(r["retryPolicy"] == "OnTransientError" and r["limit"] == "2" for r in retries)
    # The private key's Secret is readable by its owner only; the steps' home is writable scratch.
    (signing,) = [v for v in spec["volumes"] if v["name"] == "signing-key"]
    assert signing["secret"] == {"secretName": cfg.argo.signing_key_secret, "defaultMode": 0o400}


def test_cluster_settings_are_checked_where_they_are_written(tmp_path: Path) -> None:
    from projects import write_project

    from launchbay.errors import ConfigError

    for key, value, words in (
        ("argo.settings_secret", "Bad_Name", "argo.settings_secret"),
        ("argo.retries", -1, "argo.retries"),
        ("argo.memory_limit", "lots", "argo.memory_limit"),
    ):
        path = write_project(tmp_path / key, rows=50, overrides={key: value})
        with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
            load_config(path)
