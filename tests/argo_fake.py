"""An Argo server's REST calls launchbay makes (submit, set a node's parameters, resume), answered
like the server does: the test's stand-in for an Argo Workflows server, which cannot run here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


class FakeArgo(BaseHTTPRequestHandler):
    """Answers POST /api/v1/workflows/{ns} like the Argo server: echoes the workflow with a name."""

    received: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeArgo.received.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if FakeArgo.status != 200:
            self._send(FakeArgo.status, {"code": 7, "message": "workflows.argoproj.io is forbidden"})
            return
        wf = body["workflow"]
        wf["metadata"]["name"] = wf["metadata"]["generateName"] + "x7k2p"
        self._send(200, wf)

    def do_PUT(self) -> None:
        """/api/v1/workflows/{ns}/{name}/set|resume: node parameters and resuming a Suspend node."""
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeArgo.received.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if FakeArgo.status != 200:
            self._send(
                FakeArgo.status, {"code": 5, "message": f'workflows.argoproj.io "{body["name"]}" not found'}
            )
            return
        self._send(200, {"metadata": {"name": body["name"], "namespace": body["namespace"]}})

    def _send(self, code: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve_argo() -> Iterator[str]:
    """A fresh FakeArgo on a free loopback port; its URL."""
    FakeArgo.received, FakeArgo.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeArgo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
