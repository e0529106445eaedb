"""What the cluster targets render: kept as golden files and valid against the upstream schemas."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from golden import assert_golden
from rollout_fakes import config

from launchbay.pipelines.argo import to_yaml
from launchbay.rollout.targets import manifests
from launchbay.rollout.targets.base import Backend, Routes
from launchbay.rollout.targets.validate import InvalidObject, check, problems

GOLDEN = Path(__file__).resolve().parents[3] / "golden"


@pytest.mark.parametrize("target", ["kubernetes", "knative"])
def test_a_canary_release_renders_as_the_golden_file_and_validates(target: str) -> None:
    objects = manifests.release_objects(config(shadow=None), target, "3", stable="2", weight=25)
    check(objects)
    text = "---\n".join(to_yaml(o) for o in objects)
    golden = GOLDEN / f"{target}-release.yaml"
    assert_golden(text, golden)


def test_pods_run_hardened_with_probes_and_limits() -> None:
    dep = manifests.deployment(config(), "3")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert set(container["resources"]) == {"requests", "limits"}


def test_shadow_is_a_request_mirror_and_weights_add_up() -> None:
    r = Routes(stable=Backend("2", ""), canary=Backend("3", ""), canary_weight=30, mirror=False)
    rule = manifests.http_route(config(), r)["spec"]["rules"][0]
    assert sum(b["weight"] for b in rule["backendRefs"]) == 100 and "filters" not in rule
    shadow = Routes(stable=Backend("2", ""), canary=Backend("3", ""), mirror=True)
    rule = manifests.http_route(config(), shadow)["spec"]["rules"][0]
    assert [b["name"] for b in rule["backendRefs"]] == ["fraud-detector-v2"]
    assert rule["filters"][0]["requestMirror"]["backendRef"]["name"] == "fraud-detector-v3"


def test_an_invalid_object_is_refused_naming_the_field() -> None:
    route = manifests.http_route(config(), Routes(stable=Backend("2", "")))
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 1_000_001
    assert problems(route) == [
        "spec.rules.0.backendRefs.0.weight: 1000001 is greater than the maximum of 1000000"
    ]
    dep = manifests.deployment(config(), "3")
    dep["spec"]["replicas"] = "two"
    with pytest.raises(InvalidObject, match=r"Deployment/fraud-detector-v3: spec\.replicas"):
        check([dep])
    assert yaml.safe_load(to_yaml(route))["kind"] == "HTTPRoute"


def test_each_kubernetes_model_server_keeps_answers_for_the_join_and_requests_for_replay() -> None:
    def env(cfg: object) -> dict[str, str]:
        deployment = manifests.deployment(cfg, "3")  # type: ignore[arg-type]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", "") for e in container["env"]}

    assert env(config(target="kubernetes"))["LAUNCHBAY_ANSWER_LOG"] == str(manifests.ANSWER_LOG)
    assert "LAUNCHBAY_ANSWER_LOG" not in env(config(target="kubernetes", shadow=None))  # nothing to join
    replay = {"replay": {"capture": 300, "drop": ["email"], "hash": ["user", "card"]}}
    sampled = env(config(target="kubernetes", preflight=replay))
    kept = [sampled[f"LAUNCHBAY_CAPTURE{k}"] for k in ("", "_DROP", "_HASH")]
    assert kept == ["300", "email", "user,card"]
    assert "LAUNCHBAY_CAPTURE" not in env(config(target="kubernetes"))
