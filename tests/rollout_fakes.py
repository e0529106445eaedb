"""In-memory stand-ins for the rollout's seams: a target, a metrics backend, a registry, a clock.

They keep state the way the real ones do (routes read back, servers that start and die), so the
controller's tests assert end states -- routes, phases, aliases -- not the calls it made.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from people import approvers

from launchbay.checks.registered import Verification
from launchbay.checks.signature import VerifyResult
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem
from launchbay.home import Home
from launchbay.registry import ModelRef, ModelVersion
from launchbay.rollout.engine.controller import Controller
from launchbay.rollout.engine.operations import Rollout
from launchbay.rollout.engine.plan import Plan, SetWeight
from launchbay.rollout.engine.reconciler import Converged, Reconciler
from launchbay.rollout.engine.release import Release
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.metrics.base import Measurement
from launchbay.rollout.targets.base import Backend, Routes

ROLLOUT: dict[str, Any] = {
    "shadow": {"duration": "5s", "max_disagreement": 0.02, "max_score_shift": 0.1},
    "steps": [20, 50],
    "interval": "1s",
    "analysis_window": "4s",
    "min_samples": 20,
    "max_consecutive_errors": 3,
    "grace_period": "30s",
    "start_timeout": "20s",
    "approval": {"required": True, "approvers": approvers("alice", "bob")},
}


def config(**rollout: Any) -> LaunchbayConfig:
    """A minimal valid config with a fast rollout."""
    return LaunchbayConfig.model_validate(
        {
            "model": {"name": "fraud-detector", "train": "pkg.mod:train"},
            "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
            "rollout": {**ROLLOUT, **rollout},
        }
    )


@dataclass
class FakeTarget:
    """Servers that become ready after `start_ticks` health checks, or die if listed in `crash`."""

    start_ticks: int = 1
    crash: set[str] = field(default_factory=set)
    servers: dict[str, int] = field(default_factory=dict)  # version -> health checks seen
    current: Routes = field(default_factory=Routes)
    retired: list[str] = field(default_factory=list)
    deploys: list[str] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)  # a server started again elsewhere

    def deploy(self, model: str, version: str) -> None:
        if version not in self.servers:
            self.servers[version] = 0
            self.deploys.append(version)

    def started(self, version: str) -> bool:
        return version in self.servers

    def retire(self, version: str, drain_timeout: float = 10.0) -> None:
        if self.servers.pop(version, None) is not None:
            self.retired.append(version)

    def backend(self, version: str) -> Backend:
        if version not in self.servers:
            raise EnvironmentProblem(f"version {version} is not deployed")
        return Backend(version, self.addresses.get(version, f"http://v{version}"))

    def set_routes(self, routes: Routes, generation: int | None = None) -> None:
        for b in (routes.stable, routes.canary):
            assert b is None or b.version in self.servers, f"route to undeployed {b}"
        self.current = routes

    def routes(self) -> Routes:
        return self.current

    def health(self, version: str) -> Verdict:
        if version not in self.servers or version in self.crash:
            return Verdict.FAIL
        self.servers[version] += 1
        return Verdict.PASS if self.servers[version] > self.start_ticks else Verdict.INCONCLUSIVE

    def processes(self) -> FakeTarget:
        return self  # like the local target: its servers have logs

    @property
    def url(self) -> str:
        return "http://gateway.test"

    def log_tail(self, version: str, lines: int = 15) -> str:
        return "Traceback ...\nImportError: no module named 'gpu_driver'"

    def down(self) -> list[str]:
        return [f"version {v}" for v in self.servers]

    def deployed(self) -> list[str]:
        return sorted(self.servers)


@dataclass
class Metrics:
    """Answers queries from `values`: the first key found in the query decides (version-aware)."""

    values: dict[str, float | None] = field(default_factory=dict)
    down: bool = False
    queries: list[str] = field(default_factory=list)

    def query(self, query: str) -> Measurement:
        self.queries.append(query)
        if self.down:
            return Measurement.failed(query, "ConnectionError: connection refused")
        for key, value in self.values.items():
            if all(part in query for part in key.split("&")):
                return Measurement(value, None, query)
        return Measurement(None, None, query)


def new_release(ledger: SqlLedger, *, model: str = "fraud-detector", version: str = "3") -> Release:
    """A release of `version` over stable v2, by dana, with one 5 % canary step."""
    return ledger.create(
        model=model,
        version=version,
        author="dana",
        stable_version="2",
        plan=Plan(steps=(SetWeight(percent=5),)),
    )


def healthy(candidate: str = "2", stable: str = "1") -> dict[str, float | None]:
    """Metrics of a candidate as good as stable, in shadow and in canary."""
    values: dict[str, float | None] = {}
    for v in (candidate, stable):
        for role in ("primary", "shadow"):
            values[f'version="{v}",role="{role}"&code="5xx"'] = 0.0
            values[f'version="{v}",role="{role}"&histogram_quantile'] = 8.0
            values[f'version="{v}",role="{role}"'] = 200.0
    values["disagreement_rows"] = 0.0
    values["score_diff_sum"] = 0.01
    values["compared_rows"] = 200.0
    return values


@dataclass
class FakeRegistry:
    """Aliases and tags of one model, as the Registry protocol moves them."""

    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)

    def resolve(self, ref: ModelRef) -> ModelVersion:
        version = self.aliases.get(ref.ref, ref.ref)
        tags = dict(self.tags.get(version, {}))
        return ModelVersion(ref.model, version, f"models:/m-{version}", f"m-{version}", tags=tags)

    def download(self, version: ModelVersion, dst: Path) -> Path:
        raise AssertionError("the rollout never downloads models")

    def alias(self, model: str, alias: str) -> str | None:
        return self.aliases.get(alias)

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def tag(self, model: str, version: str, key: str, value: str) -> None:
        self.tags.setdefault(version, {})[key] = value

    def outcome(self, version: str) -> str | None:
        """How the version's release ended, as the rollout tagged it."""
        return self.tags.get(version, {}).get("launchbay.rollout")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    ctx: Rollout
    target: FakeTarget
    metrics: Metrics
    registry: FakeRegistry
    clock: Clock

    def controller(self) -> Controller:
        return Controller(self.ctx, self.metrics, clock=self.clock, verifier=lambda _c, _r: PASSED)

    def ticks(self, release: Release, n: int, seconds: float = 1.0, c: Controller | None = None) -> Release:
        c = c or self.controller()
        for _ in range(n):
            release = c.tick(release)
            self.clock.now += seconds
        return release

    @property
    def ledger(self) -> SqlLedger:
        return self.ctx.ledger

    def converge(self) -> Converged:
        """What a command does after recording its decision: one reconciler pass."""
        return Reconciler(self.ctx).converge()


PASSED = Verification("fraud-detector", "2", VerifyResult(Verdict.PASS, "signature verified", "k.pub"))


def world(tmp: Path, cfg: LaunchbayConfig | None = None, target: FakeTarget | None = None) -> World:
    cfg = cfg or config()
    target = target or FakeTarget()
    registry = FakeRegistry({"champion": "1"})
    clock = Clock()
    ledger = SqlLedger(f"sqlite:///{tmp / 'ledger.db'}", clock=clock)
    ctx = Rollout(cfg, Home(tmp), ledger, target, registry)  # type: ignore[arg-type]
    # Stable serves all traffic already, as after an earlier promotion.
    target.deploy("fraud-detector", "1")
    target.servers["1"] = 99
    target.set_routes(Routes(stable=target.backend("1")))
    return World(ctx, target, Metrics(healthy()), registry, clock)


def cluster_config(
    target: str, kubeconfig: Path, kubernetes: dict[str, Any] | None = None, **rollout: Any
) -> LaunchbayConfig:
    """A config for a cluster target whose kubeconfig points at a fake API server."""
    base = {**ROLLOUT, "target": target, "prometheus_url": "http://prometheus.test:9090", **rollout}
    if target == "knative":
        base["shadow"] = None  # Knative cannot mirror
    return LaunchbayConfig.model_validate(
        {
            "model": {"name": "fraud-detector", "train": "pkg.mod:train"},
            "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
            "rollout": base,
            "kubernetes": {"namespace": "ml", "kubeconfig": str(kubeconfig), **(kubernetes or {})},
        }
    )


def pushed(version: str, repository: str = "ghcr.io/launchbay/fraud-detector") -> str:
    """A digest reference as a push of `version`'s image would print it (distinct per version)."""
    return f"{repository}@sha256:{hashlib.sha256(version.encode()).hexdigest()}"


def healthy_cluster(candidate: str = "2", stable: str = "1") -> dict[str, float | None]:
    """Healthy answers to the cluster targets' default queries (the services' own metrics)."""
    values: dict[str, float | None] = {}
    for v in (candidate, stable):
        values[f'version="{v}",http_response_code'] = 0.0
        values[f'version="{v}"&histogram_quantile'] = 8.0
    values['predicted_class="1"'] = 0.0
    values["launchbay_prediction_score_sum"] = 0.01
    for v in (candidate, stable):
        values[f'launchbay_predictions_total{{version="{v}"}}'] = 200.0
        values[f'version="{v}"}}'] = 200.0
    return values
