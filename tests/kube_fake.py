"""A fake Kubernetes API server at the HTTP layer, for the cluster targets' tests.

It answers the REST calls the kubernetes client makes -- server-side apply (PATCH with
`application/apply-patch+yaml`), GET and DELETE of namespaced objects -- the way the API server
does: objects are stored, 404 and 409 come back as `Status` objects, a field owned by another
field manager is a conflict unless `force=true`, and `forbidden` makes chosen verbs answer 403
like RBAC would. Controllers are simulated just enough for readiness: a Deployment becomes ready
(unless its version is in `broken`), a Knative Service reports its revisions ready.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<gv>[^/]+))/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)/(?P<name>[^/]+)$"
)


def failure(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    """An error answer as the API server gives it: a `Status` object."""
    return code, {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass
class FakeApiServer:
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    forbidden: set[tuple[str, str]] = field(default_factory=set)  # (method, plural)
    broken: set[str] = field(default_factory=set)  # versions whose pods never get ready
    requests: list[tuple[str, str]] = field(default_factory=list)
    _rv: int = 0

    def status(self, code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
        return failure(code, reason, message)

    def handle(self, method: str, url: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
        parsed = urlparse(url)
        self.requests.append((method, parsed.path))
        m = _PATH.match(parsed.path)
        if m is None:
            return self.status(
                404, "NotFound", f"the server could not find the requested resource {parsed.path}"
            )
        api_version = "v1" if m["core"] else f"{m['group']}/{m['gv']}"
        key = (api_version, m["plural"], m["ns"], m["name"])
        if (method, m["plural"]) in self.forbidden:
            return self.status(
                403,
                "Forbidden",
                f'{m["plural"]} "{m["name"]}" is forbidden: User "system:serviceaccount:{m["ns"]}:launchbay" '
                f'cannot {method.lower()} resource "{m["plural"]}" in the namespace "{m["ns"]}"',
            )
        query = parse_qs(parsed.query)
        if method == "GET":
            obj = self.objects.get(key)
            return (
                (200, obj) if obj else self.status(404, "NotFound", f'{m["plural"]} "{m["name"]}" not found')
            )
        if method == "DELETE":
            if self.objects.pop(key, None) is None:
                return self.status(404, "NotFound", f'{m["plural"]} "{m["name"]}" not found')
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        if method == "PATCH":
            if content_type != "application/apply-patch+yaml":
                return self.status(415, "UnsupportedMediaType", f"unsupported patch type {content_type}")
            manager = (query.get("fieldManager") or [""])[0]
            if not manager:
                return self.status(400, "BadRequest", "PATCH with apply requires a fieldManager")
            obj = json.loads(body)
            if obj.get("apiVersion") != api_version or obj["metadata"]["name"] != m["name"]:
                return self.status(400, "BadRequest", "the object does not match the URL")
            current = self.objects.get(key)
            force = (query.get("force") or ["false"])[0] == "true"
            if current is not None and not force:
                owner = current["metadata"]["managedFields"][0]["manager"]
                if owner != manager and current.get("spec") != obj.get("spec"):
                    return self.status(
                        409,
                        "Conflict",
                        f'Apply failed with 1 conflict: conflict with "{owner}" using {api_version}: .spec',
                    )
            self._rv += 1
            stored = json.loads(json.dumps(obj))
            stored["metadata"].update(
                uid=(current or {}).get("metadata", {}).get("uid", f"uid-{self._rv}"),
                resourceVersion=str(self._rv),
                managedFields=[{"manager": manager, "operation": "Apply", "apiVersion": api_version}],
            )
            stored["status"] = self._status_of(stored)
            self.objects[key] = stored
            return (200 if current else 201), stored
        return self.status(405, "MethodNotAllowed", method)

    def _status_of(self, obj: dict[str, Any]) -> dict[str, Any]:
        version = obj["metadata"].get("labels", {}).get("launchbay.io/version")
        if obj["kind"] == "Deployment":
            if version in self.broken:
                return {
                    "readyReplicas": 0,
                    "conditions": [
                        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                    ],
                }
            return {"readyReplicas": obj["spec"].get("replicas", 1)}
        if obj["kind"] == "Service" and obj["apiVersion"].startswith("serving.knative.dev"):
            newest = obj["spec"]["template"]["metadata"]["name"]
            ready = not newest.endswith(tuple(f"-v{v}" for v in self.broken))
            return {
                "latestCreatedRevisionName": newest,
                "latestReadyRevisionName": newest if ready else None,
                "traffic": obj["spec"].get("traffic", []),
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            }
        return {}

    def find(self, kind_plural: str, name: str) -> dict[str, Any] | None:
        for (_, plural, _, n), obj in self.objects.items():
            if plural == kind_plural and n == name:
                return obj
        return None


JsonHandler = Callable[[str, str, bytes, dict[str, str]], tuple[int, dict[str, Any]]]
"""(method, path with query, body, headers in lower case) -> (status code, JSON document)."""


@contextmanager
def json_server(handle: JsonHandler) -> Iterator[str]:
    """An HTTP server answering every request with `handle`'s JSON, on a free loopback port; its
    URL. A bug in `handle` is a 500 naming it, not a client left hanging."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _do(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                code, doc = handle(self.command, self.path, self.rfile.read(length), headers)
            except Exception as exc:
                code, doc = 500, {"kind": "Status", "code": 500, "message": f"{type(exc).__name__}: {exc}"}
            payload = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _do  # noqa: N815 (http.server's names)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve(fake: FakeApiServer) -> Iterator[str]:
    """Run the fake on a free loopback port; yield its URL."""
    with json_server(lambda m, path, body, h: fake.handle(m, path, body, h.get("content-type", ""))) as url:
        yield url


def kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig file pointing at `url` (no credentials: the fake does not check them)."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "launchbay", "user": {"token": "test-token"}}],
                "contexts": [
                    {
                        "name": "fake",
                        "context": {"cluster": "fake", "user": "launchbay", "namespace": "launchbay"},
                    }
                ],
                "current-context": "fake",
            }
        )
    )
    return path
