"""The Kubernetes target: per version a Deployment, Service and HorizontalPodAutoscaler; traffic
through one Gateway API HTTPRoute (weights; RequestMirror for shadow).

Routes are read back from the API server rather than remembered, and every object is validated
against its upstream schema before it is applied (`kube_api` applies without force).
"""

from __future__ import annotations

from typing import Any

from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.rollout.targets import manifests
from launchbay.rollout.targets.base import Backend, Processes, Routes
from launchbay.rollout.targets.images import ImageOf
from launchbay.rollout.targets.kube_api import Api
from launchbay.rollout.targets.validate import check
from launchbay.serving.request_sample import PATH as SAMPLE_PATH
from launchbay.serving.request_sample import Captured


def _ready(deployment: dict[str, Any] | None) -> Verdict:
    if deployment is None:
        return Verdict.FAIL
    status = deployment.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Verdict.FAIL
    return Verdict.PASS if (status.get("readyReplicas") or 0) >= 1 else Verdict.INCONCLUSIVE


class KubernetesTarget:
    """Deployments behind a Gateway API HTTPRoute."""

    def __init__(self, cfg: LaunchbayConfig, api: Api, image_of: ImageOf | None = None) -> None:
        self.cfg, self.api = cfg, api
        self.image_of = image_of
        self.ns = cfg.kubernetes.namespace
        self.model = cfg.model.name

    def deploy(self, model: str, version: str) -> None:
        """Apply the version's Deployment, Service and HPA (validated first)."""
        image = self.image_of(model, version) if self.image_of else None
        objects = manifests.version_objects(self.cfg, version, image)
        check(objects)
        for obj in objects:
            self.api.apply(obj)

    def started(self, version: str) -> bool:
        """True while the version's Deployment exists."""
        return self._deployment(version) is not None

    def _deployment(self, version: str) -> dict[str, Any] | None:
        return self.api.get("apps/v1", "Deployment", self.ns, manifests.unit_name(self.model, version))

    def health(self, version: str) -> Verdict:
        """PASS with a ready replica; FAIL when missing or its rollout exceeded its deadline."""
        return _ready(self._deployment(version))

    def backend(self, version: str) -> Backend:
        """The version's Service inside the cluster."""
        name = manifests.unit_name(self.model, version)
        return Backend(version=str(version), url=f"http://{name}.{self.ns}.svc:{manifests.PORT}")

    def set_routes(self, routes: Routes, generation: int | None = None) -> None:
        """Apply the model's HTTPRoute.

        `generation` is not kept here: the reconciler checks the ledger just before writing.
        """
        del generation
        route = manifests.http_route(self.cfg, routes)
        check([route])
        self.api.apply(route)

    def routes(self) -> Routes:
        """Read the HTTPRoute back: weights give stable/canary, a RequestMirror filter the shadow."""
        route = self.api.get("gateway.networking.k8s.io/v1", "HTTPRoute", self.ns, self.model)
        if route is None:
            return Routes()
        rule = manifests.weighted_rule(route)
        refs = [(self._version(r["name"]), int(r.get("weight", 1))) for r in rule.get("backendRefs") or []]
        mirrors = [
            self._version(f["requestMirror"]["backendRef"]["name"])
            for f in rule.get("filters") or []
            if f.get("type") == "RequestMirror"
        ]
        stable = refs[0][0] if refs else None
        canary = refs[1] if len(refs) > 1 else None
        canary_version = canary[0] if canary else (mirrors[0] if mirrors else None)
        return Routes(
            stable=self.backend(stable) if stable else None,
            canary=self.backend(canary_version) if canary_version else None,
            canary_weight=canary[1] if canary else 0,
            mirror=bool(mirrors),
        )

    def endpoints(self, version: str) -> list[str]:
        """The base URLs of the version's ready pods (its Service's EndpointSlices): where the
        controller reads each pod's answer log for the shadow join."""
        selector = f"kubernetes.io/service-name={manifests.unit_name(self.model, version)}"
        urls = []
        for piece in self.api.list("discovery.k8s.io/v1", "EndpointSlice", self.ns, selector):
            for ep in piece.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready", True):
                    urls += [f"http://{a}:{manifests.PORT}" for a in ep.get("addresses") or []]
        return urls

    def captured(self, version: str) -> Captured | None:
        """The requests `version`'s pods sampled for replay (rollout.preflight.replay), merged:
        every pod's bodies, and the sum of each pod's busiest second as the peak (None: none)."""
        import httpx

        bodies: list[str] = []
        peak = seen = 0
        for url in self.endpoints(version):
            try:
                doc = httpx.get(url + SAMPLE_PATH, timeout=5).raise_for_status().json()
                bodies += [str(b) for b in doc["bodies"]]
                peak, seen = peak + int(doc["peak_rps"]), seen + int(doc["seen"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue  # a pod without the sample (an older image) or away: the others count
        return Captured(bodies, peak, seen) if bodies else None

    def _version(self, unit: str) -> str:
        return unit.removeprefix(f"{self.model}-v")

    def retire(self, version: str, drain_timeout: float = 10.0) -> None:
        """Delete the version's objects (Kubernetes drains pods by their termination grace period)."""
        name = manifests.unit_name(self.model, version)
        for api_version, kind in (
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("v1", "Service"),
            ("apps/v1", "Deployment"),
        ):
            self.api.delete(api_version, kind, self.ns, name)

    def processes(self) -> Processes | None:
        """None: the cluster runs the pods (their logs are the platform's)."""
        return None
