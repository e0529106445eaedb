"""The Prometheus provider against a fake Prometheus HTTP API: value, no data, NaN, errors."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from launchbay.rollout.metrics.prometheus import Access, PrometheusProvider


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


class GuardedPrometheus(FakePrometheus):
    """A Prometheus behind a proxy that wants `Authorization` (as an ingress with auth would)."""

    expected: ClassVar[str] = ""
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        got = self.headers.get("Authorization", "")
        self.seen.append(got)
        if got != self.expected:
            code = 403 if got else 401
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("access", "header"),
    [
        (Access(token="s3cret"), "Bearer s3cret"),
        (Access(basic=("prom", "pw")), "Basic " + base64.b64encode(b"prom:pw").decode()),
    ],
)
def test_credentials_reach_prometheus_and_their_absence_or_rejection_is_explained(
    access: Access, header: str
) -> None:
    GuardedPrometheus.answers = {"up": vector("1")}
    GuardedPrometheus.expected = header
    with _serving(GuardedPrometheus) as url:
        assert PrometheusProvider(url, access=access).query("up").value == 1.0
        missing = PrometheusProvider(url).query("up")
        wrong = PrometheusProvider(url, access=Access(token="stale")).query("up")
    assert not missing.has_value and "needs credentials (401)" in (missing.error or "")
    assert not wrong.has_value and "rejected the credentials (403)" in (wrong.error or "")
    for m in (missing, wrong):
        assert "LAUNCHBAY_PROMETHEUS_TOKEN" in (m.error or "")


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAUNCHBAY_PROMETHEUS_USER", "prom")
    monkeypatch.setenv("LAUNCHBAY_PROMETHEUS_PASSWORD", "pw")
    monkeypatch.setenv("LAUNCHBAY_PROMETHEUS_CA_FILE", "/etc/ca.pem")
    assert Access.from_env() == Access(ca_file="/etc/ca.pem", basic=("prom", "pw"))
    monkeypatch.setenv("LAUNCHBAY_PROMETHEUS_TOKEN", "t")
    assert Access.from_env(ca_file="/mine.pem").token == "t"
    assert Access.from_env(ca_file="/mine.pem").ca_file == "/mine.pem"  # the config's file wins


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prometheus.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "prom.crt", tmp / "prom.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_tls_is_verified_by_default_and_a_ca_file_makes_a_private_ca_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # ignored: only launchbay's own settings count
    FakePrometheus.answers = {"up": vector("1")}
    with _serving(FakePrometheus, tls) as url:
        refused = PrometheusProvider(url).query("up")
        trusted = PrometheusProvider(url, access=Access(ca_file=str(cert))).query("up")
    assert not refused.has_value and "TLS verification failed" in (refused.error or "")
    assert "prometheus_ca_file" in (refused.error or "")
    assert trusted.value == 1.0
