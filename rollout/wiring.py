"""Wiring: the one builder of a rollout's parts from a config, shared by every entry point.

The CLI verbs (`release`, `approve`, `rollback`, `controller`, ...) and the Argo workflow's rollout
steps (`release`, `promote`) all get their ledger, target, registry and metrics backend here, so a
release started in a workflow and approved from a laptop meets the same parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from launchbay.config import LaunchbayConfig
from launchbay.errors import ConfigError
from launchbay.home import Home
from launchbay.registry import MlflowRegistry
from launchbay.rollout.engine.controller import Controller
from launchbay.rollout.engine.operations import Rollout
from launchbay.rollout.factory import make_target
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.metrics.base import MetricsProvider
from launchbay.rollout.targets import images


@dataclass
class Wired(Rollout):
    """A rollout's parts as the entry points build them: the engine sees the Ledger seam, the
    entry points also the SQL store behind it (the notifications' outbox lives in its database)."""

    ledger: SqlLedger


def rollout(cfg: LaunchbayConfig, home: Home, ledger: SqlLedger | None = None) -> Wired:
    """The ledger, the configured target and the registry of this project.

    Raises:
        UsageError: a cluster target without `rollout.prometheus_url`.
        EnvironmentProblem: no usable Kubernetes configuration for a cluster target.
    """
    ledger = ledger or SqlLedger.for_config(cfg, home)
    known = ledger

    def notify(action: str, reason: str) -> None:
        # What the target did on its own (a gateway restarted) goes on the model's newest release.
        newest = next(iter(known.releases(cfg.model.name)), None)
        if newest is not None:
            known.record(newest, actor="launchbay", action=action, reason=reason)

    registry = MlflowRegistry(cfg, home)
    target = make_target(cfg, home, notify, images.resolver(cfg, registry))
    return Wired(cfg, home, ledger, target, registry)


def metrics(ctx: Rollout) -> MetricsProvider:
    """The Prometheus the analysis reads: `rollout.prometheus_url`, else the local one (started
    if it does not run; only the local target gets one)."""
    from launchbay.rollout.metrics.prometheus import Access, PrometheusProvider

    r = ctx.cfg.rollout
    if not r.prometheus_url:
        from launchbay.rollout.local.prometheus import LocalPrometheus

        return PrometheusProvider(LocalPrometheus(ctx.home).ensure())
    ca = ctx.cfg.resolve_path(r.prometheus_ca_file) if r.prometheus_ca_file else None
    if ca and not Path(ca).is_file():
        raise ConfigError(f"rollout.prometheus_ca_file: {ca} is not a file (expected a PEM CA bundle)")
    return PrometheusProvider(r.prometheus_url, access=Access.from_env(ca, r.prometheus_insecure))


def controller(ctx: Rollout) -> Controller:
    """A controller driving this project's releases with the configured metrics."""
    return Controller(ctx, metrics(ctx))
