"""The Knative target (also accepted by Cloud Run): one Knative Service per model, a revision per
version, traffic by percentages and tags. Knative cannot mirror requests, so this target has no
shadow step (refused at config load).
"""

from __future__ import annotations

from typing import Any

from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem
from launchbay.rollout.targets import manifests
from launchbay.rollout.targets.base import Backend, Processes, Routes
from launchbay.rollout.targets.images import ImageOf
from launchbay.rollout.targets.kube_api import Api
from launchbay.rollout.targets.validate import check


def _template_image(svc: dict[str, Any]) -> str | None:
    containers = svc.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
    image = containers[0].get("image")
    return str(image) if image else None


class KnativeTarget:
    """One Knative Service per model; a revision per version; traffic by percentages."""

    def __init__(self, cfg: LaunchbayConfig, api: Api, image_of: ImageOf | None = None) -> None:
        self.cfg, self.api = cfg, api
        self.image_of = image_of
        self.ns = cfg.kubernetes.namespace
        self.model = cfg.model.name
        self._latest: str | None = None

    def _service(self) -> dict[str, Any] | None:
        return self.api.get("serving.knative.dev/v1", "Service", self.ns, self.model)

    def _revision_of(self, svc: dict[str, Any]) -> str:
        return str(svc["spec"]["template"]["metadata"]["name"]).removeprefix(f"{self.model}-v")

    def deploy(self, model: str, version: str) -> None:
        """Make `version` the Service's template (a new revision) without moving traffic to it."""
        svc = self._service()
        routes = self.routes() if svc is not None else Routes()
        if routes.stable is None:
            routes = Routes(stable=self.backend(version))  # the first revision takes all traffic
        image = self.image_of(model, version) if self.image_of else None
        obj = manifests.knative_service(self.cfg, version, routes, image)
        check([obj])
        self.api.apply(obj)

    def started(self, version: str) -> bool:
        """True once a revision of `version` was asked for."""
        svc = self._service()
        return svc is not None and self._known(svc, version)

    def _known(self, svc: dict[str, Any], version: str) -> bool:
        names = {t.get("revisionName") for t in svc.get("spec", {}).get("traffic") or []}
        return self._revision_of(svc) == str(version) or manifests.unit_name(self.model, version) in names

    def health(self, version: str) -> Verdict:
        """Readiness from the Service status: the latest ready revision and those serving traffic."""
        svc = self._service()
        if svc is None or not self._known(svc, version):
            return Verdict.FAIL
        status = svc.get("status") or {}
        name = manifests.unit_name(self.model, version)
        ready = {status.get("latestReadyRevisionName")} | {
            t.get("revisionName") for t in status.get("traffic") or []
        }
        if status.get("latestCreatedRevisionName") == name and any(
            c.get("type") == "Ready" and c.get("status") == "False" for c in status.get("conditions") or []
        ):
            return Verdict.FAIL
        return Verdict.PASS if name in ready else Verdict.INCONCLUSIVE

    def backend(self, version: str) -> Backend:
        """The version's tagged URL (`v<N>-<service>`)."""
        return Backend(version=str(version), url=f"http://v{version}-{self.model}.{self.ns}.svc")

    def set_routes(self, routes: Routes, generation: int | None = None) -> None:
        """Apply traffic percentages (the template stays the newest revision).

        `generation` is not kept here: the reconciler checks the ledger just before writing.
        """
        del generation
        if routes.mirror:
            raise EnvironmentProblem("Knative cannot mirror requests: this target has no shadow step")
        svc = self._service()
        if svc is not None:
            # A revision is immutable: re-applying the template must keep the image it runs.
            newest, image = self._revision_of(svc), _template_image(svc)
        else:
            newest = (routes.canary or routes.stable or Backend("", "")).version
            image = self.image_of(self.model, newest) if self.image_of and newest else None
        obj = manifests.knative_service(self.cfg, newest, routes, image)
        check([obj])
        self.api.apply(obj)

    def routes(self) -> Routes:
        """Read traffic back from the Service."""
        svc = self._service()
        if svc is None:
            return Routes()
        traffic = svc.get("spec", {}).get("traffic") or []
        versions = [
            (str(t["revisionName"]).removeprefix(f"{self.model}-v"), int(t.get("percent", 0)))
            for t in traffic
            if str(t.get("tag") or "v").startswith("v")  # `stable`/`candidate`: pins, not the split
        ]
        stable = versions[0][0] if versions else None
        canary = versions[1] if len(versions) > 1 else None
        return Routes(
            stable=self.backend(stable) if stable else None,
            canary=self.backend(canary[0]) if canary else None,
            canary_weight=canary[1] if canary else 0,
        )

    def retire(self, version: str, drain_timeout: float = 10.0) -> None:
        """Drop a version from traffic; Knative garbage-collects revisions without traffic."""
        routes = self.routes()
        if routes.canary is not None and routes.canary.version == str(version):
            self.set_routes(Routes(stable=routes.stable))

    def processes(self) -> Processes | None:
        """None: Knative runs the revisions."""
        return None
