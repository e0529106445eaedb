"""What the controller exports to Prometheus: phase changes (alert on rollbacks) and weights."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from rollout.controller import traffic_for
from rollout.ledger import Release


@dataclass
class ControllerMetrics:
    """`launchbay_release_phase_changes_total{model,phase}` and `launchbay_release_canary_weight{model}`."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.changes = Counter(
            "launchbay_release_phase_changes",
            "Releases entering a phase, as seen by this controller",
            ["model", "phase"],
            registry=self.registry,
        )
        self.weight = Gauge(
            "launchbay_release_canary_weight",
            "Canary weight (percent) of the model's live release",
            ["model"],
            registry=self.registry,
        )

    @classmethod
    def serve(cls, port: int) -> ControllerMetrics:
        """Start the HTTP endpoint (a thread) and return the metrics."""
        metrics = cls()
        start_http_server(port, registry=metrics.registry)
        return metrics

    def observe(self, release: Release, previous_phase: str) -> None:
        """Count a phase change (once per change) and set the live weight."""
        if release.phase.value != previous_phase:
            self.changes.labels(release.model, release.phase.value).inc()
        weight = traffic_for(release)[0] if release.phase.live else 0
        self.weight.labels(release.model).set(weight)
