"""What the controller exports to Prometheus: phase changes (alert on rollbacks) and weights."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from launchbay.rollout.engine.release import Release


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

    def observe(self, release: Release, before: Release | None) -> None:
        """Count a phase change (once per change) and set the live weight."""
        if before is None or release.phase is not before.phase:
            self.changes.labels(release.model, release.phase.value).inc()
        weight = release.plan.traffic(release.step_index).canary_weight if release.step is not None else 0
        self.weight.labels(release.model).set(weight)
