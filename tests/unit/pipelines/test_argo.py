"""Submitting to Argo: against a fake Argo server at the HTTP layer, and with none at all."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from launchbay.config import load_config
from launchbay.errors import EnvironmentProblem
from pipelines.argo import for_argo, submit, validate

REPO_CONFIG = Path(__file__).resolve().parents[3] / "launchbay.yaml"


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

    def _send(self, code: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def argo() -> Iterator[str]:
    FakeArgo.received, FakeArgo.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeArgo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def workflow():  # type: ignore[no-untyped-def]
    return for_argo(load_config(REPO_CONFIG), git_commit="abc123")


def test_submit_posts_a_valid_workflow_to_the_namespace(argo: str) -> None:
    name = submit(workflow(), argo, "ml-team", "Bearer s3cret")
    assert name == "fraud-detector-training-x7k2p"
    (req,) = FakeArgo.received
    assert req["path"] == "/api/v1/workflows/ml-team"
    assert req["auth"] == "Bearer s3cret"
    sent = req["body"]["workflow"]
    assert sent["metadata"]["namespace"] == "ml-team"
    assert validate(sent) == []
    params = {p["name"]: p.get("value") for p in sent["spec"]["arguments"]["parameters"]}
    assert params["git-commit"] == "abc123"


def test_server_refusal_is_reported_with_its_message(argo: str) -> None:
    FakeArgo.status = 403
    with pytest.raises(EnvironmentProblem, match=r"refused the workflow.*forbidden"):
        submit(workflow(), argo, "argo", None)


def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EnvironmentProblem, match="unreachable"):
        submit(workflow(), f"http://127.0.0.1:{port}", "argo", None)
