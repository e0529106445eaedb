"""The Prometheus provider against a fake Prometheus HTTP API: value, no data, NaN, errors."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from launchbay.rollout.metrics.prometheus import PrometheusProvider


class FakePrometheus(BaseHTTPRequestHandler):
    """Answers /api/v1/query with a canned result per query text."""

    answers: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        q = parse_qs(urlparse(self.path).query).get("query", [""])[0]
        status, body = self.answers.get(
            q, (200, {"status": "success", "data": {"resultType": "vector", "result": []}})
        )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def vector(*values: str) -> tuple[int, dict[str, Any]]:
    result = [{"metric": {"v": str(i)}, "value": [1.0, v]} for i, v in enumerate(values)]
    return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.fixture
def prom() -> Iterator[PrometheusProvider]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakePrometheus.answers = {
        "up": vector("1"),
        "nan": vector("NaN"),
        "many": vector("1", "2"),
        "bad": (400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}),
    }
    yield PrometheusProvider(f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


def test_a_value(prom: PrometheusProvider) -> None:
    assert prom.query("up").value == 1.0


def test_empty_and_nan_are_no_data_not_zero(prom: PrometheusProvider) -> None:
    assert prom.query("nothing_here").no_data
    assert prom.query("nan").no_data


def test_bad_queries_and_several_series_are_errors(prom: PrometheusProvider) -> None:
    assert "parse error" in (prom.query("bad").error or "")
    assert "expected one series" in (prom.query("many").error or "")


def test_an_unreachable_prometheus_is_an_error_not_an_exception() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = PrometheusProvider(f"http://127.0.0.1:{port}").query("up")
    assert not m.has_value and m.error
