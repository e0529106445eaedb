"""Cluster targets through the Kubernetes API: server-side apply as field manager `launchbay`.

`KubernetesTarget`: per version a Deployment, Service and HorizontalPodAutoscaler; traffic through
one Gateway API HTTPRoute (weights; RequestMirror for shadow). `KnativeTarget`: one Knative
Service, a revision per version, traffic percentages (no mirroring). Both read their routes back
from the API server rather than remembering them, and validate every object before applying it.

Apply does not force: a field another manager owns (someone edited the route by hand) is a
conflict reported to the person, not silently overwritten.
"""

from __future__ import annotations

import json
from typing import Any

from checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem
from rollout.targets import manifests
from rollout.targets.gateway import Backend, Routes
from rollout.targets.validate import check

FIELD_MANAGER = "launchbay"

_PLURALS = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
    ("serving.knative.dev/v1", "Service"): "services",
}


def path(api_version: str, kind: str, namespace: str, name: str) -> str:
    """The REST path of a namespaced object."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{_PLURALS[(api_version, kind)]}/{name}"


def api_client(cfg: LaunchbayConfig) -> Any:
    """A kubernetes ApiClient from kubernetes.kubeconfig/context, $KUBECONFIG, or in-cluster config.

    Raises:
        EnvironmentProblem: no usable configuration.
    """
    from kubernetes import client, config

    k = cfg.kubernetes
    try:
        if k.kubeconfig or not _in_cluster():
            conf = client.Configuration()
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=k.kubeconfig, context=k.context, client_configuration=conf
            )
        else:
            conf = client.Configuration()
            config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError, TypeError) as exc:
        raise EnvironmentProblem(
            f"no Kubernetes configuration: {exc} (set kubernetes.kubeconfig, $KUBECONFIG, "
            "or run inside a cluster)"
        ) from None
    return client.ApiClient(conf)


def _in_cluster() -> bool:
    import os

    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


class Api:
    """The few REST calls the targets need, with errors turned into messages for people."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _call(
        self, method: str, url: str, body: Any = None, query: list[tuple[str, str]] | None = None
    ) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json"}
        if method == "PATCH":
            headers["Content-Type"] = "application/apply-patch+yaml"
        try:
            # kubernetes>=35 (OpenAPI generator 7): serialise (auth, query), send, then check.
            serialized = self.client.param_serialize(
                method=method,
                resource_path=url,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.client.call_api(*serialized, _request_timeout=10)
            response.read()
            if not 200 <= response.status < 300:
                raise ApiException(http_resp=response)
            return json.loads(response.data) if response.data else None
        except ApiException as exc:
            if exc.status == 404 and method in ("GET", "DELETE"):
                return None
            raise _explain(exc, method, url) from None
        except HTTPError as exc:
            host = self.client.configuration.host
            raise EnvironmentProblem(f"the Kubernetes API server at {host} is unreachable: {exc}") from None

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply `obj` as field manager launchbay (no force)."""
        meta = obj["metadata"]
        url = path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        out: dict[str, Any] = self._call("PATCH", url, obj, [("fieldManager", FIELD_MANAGER)])
        return out

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        out: dict[str, Any] | None = self._call("GET", path(api_version, kind, namespace, name))
        return out

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete the object; nothing to delete is fine."""
        self._call("DELETE", path(api_version, kind, namespace, name))


def _explain(exc: Any, method: str, url: str) -> EnvironmentProblem:
    try:
        message = json.loads(exc.body).get("message", "")
    except (TypeError, ValueError):
        message = str(exc.body or exc.reason)
    if exc.status == 403:
        return EnvironmentProblem(
            f"Kubernetes refused {method} {url} (403 Forbidden): {message}. "
            "Give launchbay's service account that verb (see infra/ for its Role)."
        )
    if exc.status == 409:
        return EnvironmentProblem(
            f"conflict applying {url} (409): {message}. Another field manager owns these fields; "
            "remove that manager's edits or take them over by hand (kubectl apply --server-side "
            "--force-conflicts --field-manager launchbay)."
        )
    return EnvironmentProblem(f"Kubernetes answered {exc.status} to {method} {url}: {message}")


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

    def __init__(self, cfg: LaunchbayConfig, api: Api) -> None:
        self.cfg, self.api = cfg, api
        self.ns = cfg.kubernetes.namespace
        self.model = cfg.model.name

    def deploy(self, model: str, version: str) -> None:
        """Apply the version's Deployment, Service and HPA (validated first)."""
        objects = manifests.version_objects(self.cfg, version)
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

    def set_routes(self, routes: Routes) -> None:
        """Apply the model's HTTPRoute."""
        route = manifests.http_route(self.cfg, routes)
        check([route])
        self.api.apply(route)

    def routes(self) -> Routes:
        """Read the HTTPRoute back: weights give stable/canary, a RequestMirror filter the shadow."""
        route = self.api.get("gateway.networking.k8s.io/v1", "HTTPRoute", self.ns, self.model)
        if route is None:
            return Routes()
        rule = (route.get("spec", {}).get("rules") or [{}])[0]
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


class KnativeTarget:
    """One Knative Service per model; a revision per version; traffic by percentages."""

    def __init__(self, cfg: LaunchbayConfig, api: Api) -> None:
        self.cfg, self.api = cfg, api
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
        obj = manifests.knative_service(self.cfg, version, routes)
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

    def set_routes(self, routes: Routes) -> None:
        """Apply traffic percentages (the template stays the newest revision)."""
        if routes.mirror:
            raise EnvironmentProblem("Knative cannot mirror requests: this target has no shadow step")
        svc = self._service()
        newest = (
            self._revision_of(svc)
            if svc is not None
            else (routes.canary or routes.stable or Backend("", "")).version
        )
        obj = manifests.knative_service(self.cfg, newest, routes)
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
