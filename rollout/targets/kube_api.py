"""The Kubernetes API as the cluster targets use it: a few REST calls, server-side apply, plain errors.

Server-side apply as field manager `launchbay`, without force: a field another manager owns
(someone edited the route by hand) is a conflict reported to the person, not silently overwritten.
403, 409, 422 (the server's own validation, CEL rules included) and an unreachable API server
become messages that say what to do.
"""

from __future__ import annotations

import json
import os
from typing import Any

from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem

FIELD_MANAGER = "launchbay"

_PLURALS = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
    ("serving.knative.dev/v1", "Service"): "services",
    ("discovery.k8s.io/v1", "EndpointSlice"): "endpointslices",
    ("argoproj.io/v1alpha1", "Workflow"): "workflows",
}

RBAC: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps", "deployments"): ("get", "create", "patch", "delete"),
    ("", "services"): ("create", "patch", "delete"),
    ("autoscaling", "horizontalpodautoscalers"): ("create", "patch", "delete"),
    ("gateway.networking.k8s.io", "httproutes"): ("get", "create", "patch"),
    ("serving.knative.dev", "services"): ("get", "create", "patch"),
    ("discovery.k8s.io", "endpointslices"): ("list",),
}
"""(API group, resource) -> the verbs the cluster targets call: server-side apply is `patch`, and
`create` for an object that does not exist yet. The installation's Role is rendered from this,
and a test checks it against the requests a full rollout makes."""


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
        elif method == "POST":
            headers["Content-Type"] = "application/json"
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

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create `obj` (POST: the `create` verb only; it must not exist yet)."""
        meta = obj["metadata"]
        url = path(obj["apiVersion"], obj["kind"], meta["namespace"], "").rstrip("/")
        out: dict[str, Any] = self._call("POST", url, obj, [("fieldManager", FIELD_MANAGER)])
        return out

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        out: dict[str, Any] | None = self._call("GET", path(api_version, kind, namespace, name))
        return out

    def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The objects of a kind in `namespace` with labels matching `selector` ([] when none)."""
        url = path(api_version, kind, namespace, "").rstrip("/")
        out = self._call("GET", url, query=[("labelSelector", selector)])
        return list((out or {}).get("items") or [])

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
            "Give launchbay's service account that verb: the Role `launchbay render --target cluster` "
            "writes (rbac.yaml) grants exactly what launchbay uses."
        )
    if exc.status == 409:
        return EnvironmentProblem(
            f"conflict applying {url} (409): {message}. Another field manager owns these fields; "
            "remove that manager's edits or take them over by hand (kubectl apply --server-side "
            "--force-conflicts --field-manager launchbay)."
        )
    if exc.status == 422:
        # The API server's own validation (its schema, CEL rules): name each field it refused.
        try:
            causes = json.loads(exc.body).get("details", {}).get("causes") or []
        except (TypeError, ValueError):
            causes = []
        fields = "; ".join(f"{c.get('field', '?')}: {c.get('message', '')}" for c in causes) or message
        return EnvironmentProblem(
            f"the Kubernetes API server refused {url} as invalid (422): {fields}. launchbay validates "
            "against the CRD schemas it ships; this server's CRD version may check more (rules in CEL): "
            "compare its CRD with rollout/schemas/."
        )
    return EnvironmentProblem(f"Kubernetes answered {exc.status} to {method} {url}: {message}")
