"""The function target against moto's AWS Lambda (the real boto3 client at the AWS API layer, no
network): whole rollouts through the controller, read back from Lambda's own alias."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import people
import pytest
from model_dirs import EXAMPLE, signed_example
from moto import mock_aws
from rollout_fakes import PASSED, ROLLOUT, Clock, FakeRegistry, Metrics

from launchbay.config import LaunchbayConfig
from launchbay.errors import ConfigError
from launchbay.home import Home
from launchbay.rollout.engine import operations
from launchbay.rollout.engine.controller import Controller
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.reconciler import Reconciler
from launchbay.rollout.engine.release import Release
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.targets.base import Routes
from launchbay.rollout.targets.function import FunctionTarget
from launchbay.serving.function_package import lambda_zip_bytes
from launchbay.serving.package import service_sources

REGION = "eu-west-1"


def function_config(**function: Any) -> LaunchbayConfig:
    rollout = {
        **ROLLOUT,
        "target": "function",
        "shadow": None,
        "prometheus_url": "http://prometheus.test:9090",
    }
    return LaunchbayConfig.model_validate(
        {
            "model": {"name": "fraud-detector", "train": "pkg.mod:train"},
            "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
            "rollout": rollout,
            "function": {"region": REGION, **function},
        }
    )


def healthy(candidate: str = "2", stable: str = "1", errors: float = 0.0) -> dict[str, float | None]:
    """Answers to the function target's default queries (the handler's CloudWatch metrics)."""
    values: dict[str, float | None] = {}
    for v in (candidate, stable):
        sel = f'{{dimension_model="fraud-detector",dimension_version="{v}"}}'
        values[f"server_errors_sum{sel}"] = errors if v == candidate else 0.0
        values[f"latency_ms_p95{sel}"] = 8.0
        values[f"requests_sum{sel}"] = 200.0
    return values


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The example's real Lambda package (what deploy uploads for each version)."""
    root = tmp_path_factory.mktemp("pkg")
    signed, _ = signed_example(root)
    src = root / "src"
    service_sources(src)
    shutil.copy(EXAMPLE / "fraud_model.py", src / "fraud_model.py")
    return lambda_zip_bytes(src, signed, root / "out", "fraud-detector")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        trust = {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ]
        }
        role = iam.create_role(RoleName="launchbay-fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
        yield {"role": role, "client": boto3.client("lambda", region_name=REGION)}


class Lambda:
    """A rollout world whose target is AWS Lambda (moto), version 1 already serving through the alias."""

    def __init__(self, tmp: Path, aws: dict[str, Any], package: bytes, errors: float = 0.0) -> None:
        self.cfg = function_config(role=aws["role"])
        self.client = aws["client"]
        self.uploads: list[str] = []

        def packager(model: str, version: str) -> bytes:
            self.uploads.append(version)
            return package

        self.target = FunctionTarget(
            self.cfg, self.client, packager, "-----BEGIN PUBLIC KEY-----\nk\n", wait=0.01
        )
        self.clock = Clock()
        self.registry = FakeRegistry({"champion": "1"})
        ledger = SqlLedger(f"sqlite:///{tmp / 'ledger.db'}", clock=self.clock)
        self.ctx = operations.Rollout(self.cfg, Home(tmp), ledger, self.target, self.registry)  # type: ignore[arg-type]
        self.metrics = Metrics(healthy(errors=errors))
        self.controller = Controller(self.ctx, self.metrics, clock=self.clock, verifier=lambda _c, _r: PASSED)
        self.target.deploy("fraud-detector", "1")
        self.target.set_routes(Routes(stable=self.target.backend("1")))

    def alias(self) -> tuple[str, dict[str, float]]:
        a = self.client.get_alias(FunctionName="fraud-detector", Name="live")
        return a["FunctionVersion"], (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}

    def published(self) -> dict[str, str]:
        versions = self.client.list_versions_by_function(FunctionName="fraud-detector")["Versions"]
        return {v["Version"]: v["Description"] for v in versions if v["Version"] != "$LATEST"}

    def until(
        self, release: Release, phase: Phase, limit: int = 60
    ) -> tuple[Release, list[tuple[str, dict[str, float]]]]:
        seen = []
        for _ in range(limit):
            release = self.controller.tick(release)
            seen.append(self.alias())
            self.clock.now += 1
            if release.phase is phase:
                return release, seen
        raise AssertionError(f"never reached {phase}: {release}")


def test_a_canary_moves_the_aliass_weights_then_promotion_points_it_at_the_candidate(
    tmp_path: Path, aws: dict[str, Any], package: bytes
) -> None:
    w = Lambda(tmp_path, aws, package)
    assert w.published() == {"1": "launchbay fraud-detector v1"}
    r = operations.create(w.ctx, "2", "dana")
    r, seen = w.until(r, Phase.AWAITING_APPROVAL)
    assert w.published() == {"1": "launchbay fraud-detector v1", "2": "launchbay fraud-detector v2"}
    # Each step as Lambda itself reports the alias: version 1 primary, version 2 weighted.
    assert ("1", {"2": 0.2}) in seen and ("1", {"2": 0.5}) in seen
    assert w.target.routes() == Routes(
        stable=w.target.backend("1"), canary=w.target.backend("2"), canary_weight=50
    )
    assert any("aws_launchbay_requests_sum" in q for q in w.metrics.queries)  # the handler's metrics
    r = people.approve(w.ctx, str(r.id), "alice")
    assert r.phase is Phase.PROMOTED and w.alias() == ("2", {})
    w.clock.now += 60  # past the grace period: the previous stable's version is deleted
    w.controller.tick(r)
    assert w.published() == {"2": "launchbay fraud-detector v2"}
    config = w.client.get_function_configuration(FunctionName="fraud-detector", Qualifier="2")
    assert config["Handler"] == "launchbay_handler.handler" and config["Runtime"] == "python3.11"
    assert config["Environment"]["Variables"]["LAUNCHBAY_TRUSTED_KEY_PEMS"].startswith(
        "-----BEGIN PUBLIC KEY"
    )
    assert w.uploads == ["1", "2"]  # one upload per version, never again


def test_a_failing_canary_is_rolled_back_to_the_stable_version_alone(
    tmp_path: Path, aws: dict[str, Any], package: bytes
) -> None:
    w = Lambda(tmp_path, aws, package, errors=0.25)
    r = operations.create(w.ctx, "2", "dana")
    r, seen = w.until(r, Phase.ROLLED_BACK)
    assert ("1", {"2": 0.2}) in seen  # it got its first canary step, then failed it
    assert w.alias() == ("1", {})
    assert w.published() == {"1": "launchbay fraud-detector v1"}  # the candidate's version is gone
    (why,) = [e.reason for e in w.ctx.ledger.history(release_id=r.id) if e.action == "rollback"]
    assert "candidate error rate: observed 0.25" in why, why


def test_on_call_rolls_back_by_moving_the_alias_with_no_controller_running(
    tmp_path: Path, aws: dict[str, Any], package: bytes
) -> None:
    w = Lambda(tmp_path, aws, package)
    r = operations.create(w.ctx, "2", "dana")
    r, _ = w.until(r, Phase.CANARY)
    w.controller.tick(r)
    assert w.alias()[1] == {"2": 0.2}
    operations.rollback(w.ctx, "oncall", "pager")
    Reconciler(w.ctx).converge()  # what the command does next
    assert w.alias() == ("1", {})


def test_the_function_target_refuses_shadow_and_needs_a_role_to_create_the_function(
    tmp_path: Path, aws: dict[str, Any], package: bytes
) -> None:
    with pytest.raises(ValueError, match="Lambda aliases cannot mirror"):
        LaunchbayConfig.model_validate(
            {
                "model": {"name": "m", "train": "a.b:c"},
                "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
                "rollout": {"target": "function"},
            }
        )
    target = FunctionTarget(function_config(), aws["client"], lambda _m, _v: package, "", wait=0.01)
    with pytest.raises(ConfigError, match=r"function\.role"):
        target.deploy("fraud-detector", "1")
