"""The Target seam: put a release's serving units up and down, and route traffic between versions.

One small interface, implementations side by side: `local` (BentoML processes behind launchbay's
gateway), `kubernetes` (Deployment/Service/HPA per version, Gateway API HTTPRoute weights and
RequestMirror), `knative` (one Service, revision traffic percentages; no mirroring).
"""

from __future__ import annotations

from typing import Protocol

from checks.verdict import Verdict
from rollout.targets.gateway import Backend, Routes


class Target(Protocol):
    """Where model versions run and how traffic reaches them."""

    def deploy(self, model: str, version: str) -> None:
        """Start the serving units of a (verified) version; return once they were asked to start."""
        ...

    def backend(self, version: str) -> Backend:
        """Where traffic for `version` is sent (a URL on this machine, a Service in a cluster)."""
        ...

    def started(self, version: str) -> bool:
        """True once `deploy` started the version's units, until `retire` (even if they died since)."""
        ...

    def retire(self, version: str, drain_timeout: float = 10.0) -> None:
        """Stop a version's serving units after draining its in-flight requests. Idempotent."""
        ...

    def set_routes(self, routes: Routes) -> None:
        """Send traffic as `routes` says (stable, canary weight, mirroring). Idempotent."""
        ...

    def routes(self) -> Routes:
        """The routes in force, read back from the target (not from launchbay's memory)."""
        ...

    def health(self, version: str) -> Verdict:
        """PASS: answers its readiness probe; FAIL: it died; INCONCLUSIVE: still starting."""
        ...
