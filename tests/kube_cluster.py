"""A test cluster's API: a front server that authenticates, authorizes with RBAC, and serves.

Real Kubernetes puts kube-aggregator in front of kube-apiserver (built-in kinds) and
apiextensions-apiserver (custom resources). Here the same split: custom resources (launchbay's
Model, HTTPRoute, Knative Service, the CRDs themselves) are proxied to the real
apiextensions-apiserver of tests/apiserver.py -- schema validation, the status subresource,
server-side apply and its conflicts are Kubernetes' own -- and built-in kinds (namespaces,
ConfigMaps, Deployments, Services, HPAs, Leases, RBAC, Jobs) are served by this module.

What it enforces, like the real one: bearer tokens name a user (service accounts as
`system:serviceaccount:NS:NAME`); every request is authorized against the Roles, ClusterRoles
and bindings stored in it (403 with Kubernetes' message otherwise; `system:masters` may do
anything); objects in a namespace that does not exist are refused (404); replace needs the
current resourceVersion (409); deleting a namespace deletes what is in it.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import yaml
from apiserver import RealApiServer
from kube_fake import failure as _status
from kube_fake import json_server

PROXIED = {"launchbay.io", "gateway.networking.k8s.io", "serving.knative.dev", "apiextensions.k8s.io"}
_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
CLUSTER_SCOPED = {"namespaces", "clusterroles", "clusterrolebindings", "customresourcedefinitions"}
KINDS = {  # plural -> kind, for built-ins created from a rendered manifest
    "namespaces": "Namespace",
    "configmaps": "ConfigMap",
    "secrets": "Secret",
    "services": "Service",
    "serviceaccounts": "ServiceAccount",
    "deployments": "Deployment",
    "jobs": "Job",
    "leases": "Lease",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "roles": "Role",
    "rolebindings": "RoleBinding",
    "clusterroles": "ClusterRole",
    "clusterrolebindings": "ClusterRoleBinding",
}
PLURALS = {kind: plural for plural, kind in KINDS.items()}
MASTERS = "system:masters"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]


@dataclass
class Cluster:
    """Built-in objects, tokens and the request log; `real` serves the custom resources."""

    real: RealApiServer
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, User] = field(default_factory=dict)
    denied: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (user, verb, path)
    url: str = ""
    _rv: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- identities -------------------------------------------------------------------------

    def token(self, name: str, groups: tuple[str, ...] = ()) -> str:
        t = secrets.token_hex(16)
        self.tokens[t] = User(name, (*groups, "system:authenticated"))
        return t

    def service_account_token(self, namespace: str, name: str) -> str:
        return self.token(
            f"system:serviceaccount:{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
        )

    def kubeconfig(self, path: Path, token: str, namespace: str = "default") -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [{"name": "test", "cluster": {"server": self.url}}],
                    "users": [{"name": "u", "user": {"token": token}}],
                    "contexts": [
                        {"name": "test", "context": {"cluster": "test", "user": "u", "namespace": namespace}}
                    ],
                }
            )
        )
        return path

    # -- what an administrator does -----------------------------------------------------------

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
            trust_env=False,
        )

    @property
    def admin_token(self) -> str:
        for t, u in self.tokens.items():
            if MASTERS in u.groups:
                return t
        return self.token("admin", (MASTERS,))

    def apply(self, doc: dict[str, Any], manager: str = "helm") -> dict[str, Any]:
        """Server-side apply one object as an administrator (what `kubectl apply --server-side` does)."""
        with self.admin() as http:
            res = http.patch(
                object_path(doc),
                params={"fieldManager": manager, "force": "true"},
                content=json.dumps(doc),
                headers={"Content-Type": "application/apply-patch+yaml"},
            )
        assert res.status_code in (200, 201), f"{doc['kind']} {doc['metadata']['name']}: {res.text}"
        out: dict[str, Any] = res.json()
        return out

    def delete(self, doc: dict[str, Any]) -> int:
        with self.admin() as http:
            return http.delete(object_path(doc)).status_code

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        doc = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}}
        with self.admin() as http:
            res = http.get(object_path(doc))
        return res.json() if res.status_code == 200 else None

    def find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        for (_, p, ns, n), obj in self.objects.items():
            if (p, ns, n) == (plural, namespace, name):
                return obj
        return None

    # -- the API ------------------------------------------------------------------------------

    def handle(
        self, method: str, raw: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        user = self.tokens.get(headers.get("authorization", "").removeprefix("Bearer ").strip())
        if user is None:
            return _status(401, "Unauthorized", "Unauthorized")
        url = urlparse(raw)
        m = _PATH.match(url.path)
        if m is None:
            return _status(404, "NotFound", f"the server could not find the requested resource {url.path}")
        group = m["group"] or ""
        query = parse_qs(url.query)
        verb = _verb(method, m["name"], query)
        resource = m["plural"] + (f"/{m['sub']}" if m["sub"] else "")
        self.requests.append((user.name, verb, url.path))
        if not self.allowed(user, verb, group, resource, m["ns"], m["name"]):
            where = f'in the namespace "{m["ns"]}"' if m["ns"] else "at the cluster scope"
            named = f'{m["plural"]}{"." + group if group else ""} "{m["name"]}"' if m["name"] else m["plural"]
            message = (
                f'{named} is forbidden: User "{user.name}" cannot {verb} resource "{resource}" '
                f'in API group "{group}" {where}'
            )
            self.denied.append(message)
            return _status(403, "Forbidden", message)
        if group in PROXIED:
            return self._proxy(method, raw, body, headers)
        with self._lock:
            return self._serve(method, m, query, body, headers.get("content-type", ""))

    def allowed(
        self, user: User, verb: str, group: str, resource: str, ns: str | None, name: str | None
    ) -> bool:
        if MASTERS in user.groups:
            return True
        for rules in self._rules_for(user, ns):
            for rule in rules:
                if _matches(rule, verb, group, resource, name):
                    return True
        return False

    def _rules_for(self, user: User, ns: str | None) -> Iterator[list[dict[str, Any]]]:
        def subject_is(s: dict[str, Any]) -> bool:
            if s.get("kind") == "ServiceAccount":
                return user.name == f"system:serviceaccount:{s.get('namespace')}:{s['name']}"
            if s.get("kind") == "Group":
                return s["name"] in user.groups
            return bool(s.get("name") == user.name)

        for (_, plural, bns, _), b in list(self.objects.items()):
            if plural == "clusterrolebindings" or (plural == "rolebindings" and ns is not None and bns == ns):
                if not any(subject_is(s) for s in b.get("subjects") or []):
                    continue
                ref = b["roleRef"]
                role_plural = "clusterroles" if ref["kind"] == "ClusterRole" else "roles"
                role = self.find(role_plural, "" if role_plural == "clusterroles" else bns, ref["name"])
                if role is not None:
                    yield role.get("rules") or []

    def _proxy(
        self, method: str, raw: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        with self.real.client() as http:
            res = http.request(
                method,
                raw,
                content=body or None,
                headers={"Content-Type": headers.get("content-type", "application/json")},
            )
        try:
            return res.status_code, res.json()
        except ValueError:
            return _status(res.status_code, "Unknown", res.text[:500])

    def _serve(
        self, method: str, m: re.Match[str], query: dict[str, list[str]], body: bytes, content_type: str
    ) -> tuple[int, dict[str, Any]]:
        api_version = "v1" if m["core"] else f"{m['group']}/{m['version']}"
        plural, ns, name = m["plural"], m["ns"] or "", m["name"]
        if plural not in KINDS:
            return _status(404, "NotFound", f"the server could not find the requested resource ({plural})")
        key = (api_version, plural, ns, name or "")
        if method == "GET" and name is None:
            items = [
                o
                for (av, p, n, _), o in self.objects.items()
                if av == api_version and p == plural and (not ns or n == ns)
            ]
            return 200, {
                "apiVersion": api_version,
                "kind": f"{KINDS[plural]}List",
                "items": items,
                "metadata": {"resourceVersion": str(self._rv)},
            }
        if name is None and method != "POST":
            return _status(405, "MethodNotAllowed", method)
        current = self.objects.get(key)
        if method == "GET":
            return (200, current) if current else _status(404, "NotFound", f'{plural} "{name}" not found')
        if method == "DELETE":
            if current is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            del self.objects[key]
            if plural == "namespaces":  # everything in it goes with it
                for k in [k for k in self.objects if k[2] == name]:
                    del self.objects[k]
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        doc = (
            json.loads(body or b"{}")
            if content_type != "application/apply-patch+yaml"
            else yaml.safe_load(body)
        )
        if ns and plural != "namespaces" and ("v1", "namespaces", "", ns) not in self.objects:
            return _status(404, "NotFound", f'namespaces "{ns}" not found')
        if method == "POST":
            name = doc["metadata"]["name"]
            key = (api_version, plural, ns, name)
            if key in self.objects:
                return _status(409, "AlreadyExists", f'{plural} "{name}" already exists')
            return 201, self._store(key, doc, None, query.get("fieldManager", ["unknown"])[0])
        if method == "PUT":
            if current is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            if doc.get("metadata", {}).get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return _status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{name}": the object '
                    "has been modified; please apply your changes to the latest "
                    "version and try again",
                )
            return 200, self._store(key, doc, current, query.get("fieldManager", ["unknown"])[0])
        if method == "PATCH":
            manager = (query.get("fieldManager") or [""])[0]
            if content_type == "application/apply-patch+yaml":
                if not manager:
                    return _status(400, "BadRequest", "PATCH with apply requires a fieldManager")
                force = (query.get("force") or ["false"])[0] == "true"
                if current is not None and not force:
                    owner = current["metadata"]["managedFields"][0]["manager"]
                    fields = {k: v for k, v in doc.items() if k not in ("metadata", "apiVersion", "kind")}
                    if owner != manager and any(current.get(k) != v for k, v in fields.items()):
                        return _status(
                            409, "Conflict", f'Apply failed with 1 conflict: conflict with "{owner}"'
                        )
                merged = {**(current or {}), **doc}
                merged["metadata"] = {**(current or {}).get("metadata", {}), **doc["metadata"]}
            else:
                if current is None:
                    return _status(404, "NotFound", f'{plural} "{name}" not found')
                merged = _merge(copy.deepcopy(current), doc)
            return (200 if current else 201), self._store(key, merged, current, manager or "unknown")
        return _status(405, "MethodNotAllowed", method)

    def _store(
        self,
        key: tuple[str, str, str, str],
        doc: dict[str, Any],
        current: dict[str, Any] | None,
        manager: str,
    ) -> dict[str, Any]:
        self._rv += 1
        stored = copy.deepcopy(doc)
        stored.setdefault("apiVersion", key[0])
        stored.setdefault("kind", KINDS[key[1]])
        meta = stored.setdefault("metadata", {})
        if key[2]:
            meta["namespace"] = key[2]
        old = (current or {}).get("metadata", {})
        meta.update(
            uid=old.get("uid") or str(uuid.uuid4()),
            resourceVersion=str(self._rv),
            creationTimestamp=old.get("creationTimestamp") or _now(),
            managedFields=[{"manager": manager, "operation": "Apply", "apiVersion": key[0]}],
        )
        if stored["kind"] == "Deployment":  # its pods start and get ready (no kubelet here)
            stored["status"] = {"readyReplicas": stored.get("spec", {}).get("replicas", 1)}
        self.objects[key] = stored
        return stored


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for k, v in patch.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = _merge(base[k], v)
        else:
            base[k] = v
    return base


def _verb(method: str, name: str | None, query: dict[str, list[str]]) -> str:
    if method == "GET":
        if (query.get("watch") or ["false"])[0] in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower()
    )


def _matches(rule: dict[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    def has(values: list[str] | None, value: str) -> bool:
        return bool(values) and ("*" in values or value in values)  # type: ignore[operator]

    if not (
        has(rule.get("apiGroups"), group)
        and has(rule.get("resources"), resource)
        and has(rule.get("verbs"), verb)
    ):
        return False
    names = rule.get("resourceNames")
    return not names or (name is not None and name in names)


def object_path(doc: dict[str, Any]) -> str:
    """The REST path of an object (its collection when it has no name)."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    plural = (
        PLURALS.get(kind)
        or {
            "Model": "models",
            "HTTPRoute": "httproutes",
            "CustomResourceDefinition": "customresourcedefinitions",
        }[kind]
    )
    ns = (doc.get("metadata") or {}).get("namespace")
    scoped = f"/namespaces/{ns}" if ns and plural not in CLUSTER_SCOPED else ""
    return f"{prefix}{scoped}/{plural}/{doc['metadata']['name']}"


@contextmanager
def serve(real: RealApiServer) -> Iterator[Cluster]:
    """The front server on a free loopback port, in front of `real`."""
    cluster = Cluster(real)
    with json_server(cluster.handle) as url:
        cluster.url = url
        cluster.token("admin", (MASTERS,))
        yield cluster
