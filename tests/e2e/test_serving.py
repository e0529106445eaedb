"""Signed and served, end to end: register -> sign -> build -> verify -> serve -> predict over HTTP.

One pipeline run (module fixture) feeds every test; tests that tamper with artefacts come last
and restore what they changed. Every server is started on a free port and stopped by its PID.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Launchbay
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projects import RISKY_ROW as ROW
from projects import write_project

from launchbay.checks.signature import generate_keypair
from launchbay.procs import free_port

pytestmark = pytest.mark.slow


@dataclass
class Project:
    root: Path
    home: Path
    bay: Launchbay


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("served")
    home = root / "home"
    generate_keypair(home / "keys")
    write_project(root, rows=5000)
    p = Project(root, home, Launchbay(root, home))
    res = p.bay.run("run", "--no-rollout")
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"package\s+│ passed", res.stdout) and "bento=fraud-detector:v1" in res.stdout
    return p


class Server:
    def __init__(self, project: Project, ref: str, runtime: str = "bentoml") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (project.root / f"serve-{self.port}.log").open("w")
        args = ("serve", ref, "--port", str(self.port), "--runtime", runtime)
        self.proc = project.bay.spawn(*args, log=self.log)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {Path(self.log.name).read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("server not ready in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module", params=["bentoml", "lean"])
def server(project: Project, request: pytest.FixtureRequest) -> Iterator[Server]:
    """The champion served by each runtime: every API test below holds both to the same contract."""
    srv = Server(project, "fraud-detector@champion", request.param)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_the_registered_version_is_signed_with_provenance(project: Project) -> None:
    res = project.bay.run("verify", "fraud-detector@champion", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["verdict"] == "PASS" and report["version"] == "1"
    assert report["provenance"]["gates"] == {"data": "PASS", "model": "PASS"}
    assert report["provenance"]["data digest"].startswith("sha256:")


def test_predict_one_row_and_a_batch_over_http(server: Server) -> None:
    one = httpx.post(f"{server.url}/predict", json={"row": ROW}, timeout=10)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model"] == "fraud-detector" and body["version"] == "1"
    (pred,) = body["predictions"]
    assert pred["prediction"] == 1 and pred["score"] > 0.9  # night, new device, far away, risky merchant
    safe = {
        **ROW,
        "amount": 12.0,
        "hour": 14,
        "merchant_category": "grocery",
        "distance_from_home_km": 2.0,
        "device_age_days": 900,
        "card_present": True,
        "transactions_last_24h": 1,
    }
    batch = httpx.post(f"{server.url}/predict", json={"rows": [ROW, safe]}, timeout=10).json()
    assert [p["prediction"] for p in batch["predictions"]] == [1, 0]


def test_prediction_metrics_per_version_are_exported(server: Server) -> None:
    httpx.post(f"{server.url}/predict", json={"rows": [ROW] * 3}, timeout=10)
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'launchbay_predictions_total{model="fraud-detector",predicted_class="1",version="1"}' in metrics
    assert 'launchbay_prediction_score_bucket{le="1.0",model="fraud-detector",version="1"}' in metrics
    assert "bentoml_service_request_duration_seconds_bucket" in metrics


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"row": {**ROW, "amount": "950"}}, "amount"),
        ({"row": {k: v for k, v in ROW.items() if k != "hour"}}, "hour"),
        ({"row": {**ROW, "merchant_category": "crypto"}}, "merchant_category"),
        ({"row": {**ROW, "device_age_days": -1}}, "device_age_days"),
        ({"rows": [ROW] * 65}, "rows"),
        ({"rows": []}, "rows"),
    ],
)
def test_bad_requests_get_a_400_naming_the_field(server: Server, body: dict[str, Any], field: str) -> None:
    res = httpx.post(f"{server.url}/predict", json=body, timeout=10)
    assert res.status_code == 400 and field in res.text


def test_nan_and_non_json_bodies_are_400(server: Server) -> None:
    nan = (
        '{"row": {"amount": NaN, "hour": 3, "merchant_category": "fuel", "distance_from_home_km": 1.0, '
        '"device_age_days": 2, "card_present": false, "transactions_last_24h": 1}}'
    )
    for raw in (nan, "not json", "", "[1, 2]", '{"row": null}'):
        res = httpx.post(f"{server.url}/predict", content=raw, headers={"content-type": "application/json"})
        assert res.status_code == 400, (raw, res.status_code, res.text)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(), st.text(max_size=12)
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    row=st.fixed_dictionaries({}, optional={k: FIELD_VALUES for k in [*ROW, "extra"]}),
    shape=st.sampled_from(["row", "rows", "both", "junk"]),
    junk=JSON,
)
def test_fuzzed_requests_never_get_a_5xx(server: Server, row: dict[str, Any], shape: str, junk: Any) -> None:
    body: Any = (
        {"row": row}
        if shape == "row"
        else {"rows": [row, ROW]}
        if shape == "rows"
        else {"row": row, "rows": [row]}
        if shape == "both"
        else junk
    )
    payload = json.dumps(body, allow_nan=True)
    res = httpx.post(
        f"{server.url}/predict", content=payload, headers={"content-type": "application/json"}, timeout=10
    )
    assert res.status_code < 500, (payload, res.status_code, res.text)


def test_client_mistakes_are_4xx_in_the_documented_shape(server: Server) -> None:
    body = json.dumps({"row": ROW})
    multipart = httpx.post(
        f"{server.url}/predict", content=body, headers={"content-type": "multipart/form-data"}, timeout=10
    )
    assert multipart.status_code == 415 and "application/json" in multipart.json()["detail"]
    for raw, says in (
        ({"row": ROW, "rowz": [ROW]}, "unknown field(s) rowz"),
        ({"row": ROW, "rows": None}, "rows is null"),
        ({"row": {**ROW, "hour": "3"}}, "row.hour"),
    ):
        res = httpx.post(f"{server.url}/predict", json=raw, timeout=10)
        doc = res.json()
        assert res.status_code == 400 and isinstance(doc["error"], str), doc
        assert says in doc.get("detail", "") + doc["error"], doc
    docs = httpx.get(f"{server.url}/docs.json", timeout=10).json()
    op = docs["paths"]["/predict"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = docs["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert schema["oneOf"] == [{"required": ["row"]}, {"required": ["rows"]}]
    assert {"400", "415"} <= set(op["responses"])


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(server: Server, tmp_path: Path) -> None:
    """Every check schemathesis has, against the live service's own OpenAPI document (bounded)."""
    st_cli = Path(sys.executable).parent / "schemathesis"
    res = subprocess.run(
        [str(st_cli), "run", f"{server.url}/docs.json", "--checks", "all", "--max-examples", "150",
         "--generation-deterministic", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "No issues found" in res.stdout


def test_package_writes_an_edge_bundle_and_function_packages_that_answer(
    project: Project, tmp_path: Path
) -> None:
    res = project.bay.run("package", "fraud-detector@champion", "--image", "--edge", "--lambda", "--azure",
                          "-o", str(tmp_path), "--json")  # fmt: skip
    assert res.returncode == 0, res.output
    made = {p["kind"]: p for p in json.loads(res.stdout)["packages"]}
    assert set(made) == {"image", "edge", "lambda", "azure"} and made["edge"]["variant"] == "onnx"
    context = Path(made["image"]["directory"])
    assert (context / "Dockerfile").is_file() and any((context / "model").rglob("model.onnx"))
    assert made["image"]["push"] == "ghcr.io/launchbay/fraud-detector:v1"
    assert made["edge"]["sizes_mb"]["archive"] < 1.0  # the graph and the runtime: kilobytes
    bundle = Path(made["edge"]["directory"])
    key = project.home / "keys" / "signing-key.pub"
    edge = subprocess.run(
        [sys.executable, "-m", "launchbay.serving.edge", "--trusted-key", str(key), "--row", json.dumps(ROW)],
        cwd=bundle, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert edge.returncode == 0, edge.stderr
    assert json.loads(edge.stdout)["predictions"][0]["prediction"] == 1


def test_record_image_keeps_the_pushed_digest_and_refuses_a_tag(project: Project) -> None:
    tag = project.bay.run("record-image", "fraud-detector@champion", "ghcr.io/launchbay/fraud-detector:v1")
    assert tag.returncode == 2 and "not a tag" in tag.stderr and "Traceback" not in tag.stderr
    digest = "ghcr.io/launchbay/fraud-detector@sha256:" + "ab" * 32
    res = project.bay.run("record-image", "fraud-detector@champion", digest, "--as", "ci", "--json")
    assert res.returncode == 0, res.output
    assert json.loads(res.stdout) == {"model": "fraud-detector", "version": "1", "image": digest,
                                      "recorded_by": "ci"}  # fmt: skip
    again = project.bay.run("record-image", "fraud-detector@9", digest)
    assert again.returncode == 2 and "Traceback" not in again.stderr


def test_the_edge_bundle_is_measured_and_advise_lists_it(project: Project) -> None:
    res = project.bay.run("measure", "fraud-detector@1", "--runtime", "edge", "--json")
    assert res.returncode == 0, res.output
    facts = json.loads(res.stdout)
    assert 0 < facts["p50_ms"] <= facts["p95_ms"] and facts["bundle_mb"] < 1.0 and facts["cold_start_s"] > 0
    advice = project.bay.run(
        "advise", "fraud-detector@1", "--requests-per-day", "1000", "--peak-rps", "1", "--json"
    )
    # No server was measured yet: advise says so rather than guessing.
    assert advice.returncode == 2 and "has no measurements" in advice.stderr


def _flip_byte(path: Path) -> bytes:
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return original


def serve_refuses(project: Project, ref: str, runtime: str = "bentoml") -> str:
    """Start `launchbay serve REF`, expect it to exit 1 without serving; return what it printed."""
    srv = Server(project, ref, runtime)
    try:
        assert srv.proc.wait(timeout=120) == 1
    finally:
        srv.stop()
    return Path(srv.log.name).read_text()


def test_a_flipped_byte_in_the_registry_makes_verify_fail_and_serve_refuse(project: Project) -> None:
    (model_file,) = project.home.glob("artifacts/models/*/artifacts/model.skops")
    original = _flip_byte(model_file)
    try:
        res = project.bay.run("verify", "fraud-detector@1")
        assert res.returncode == 1
        assert "changed: model.skops" in res.stdout + res.stderr
        assert "refusing to serve fraud-detector@1" in serve_refuses(project, "fraud-detector@1")
    finally:
        model_file.write_bytes(original)
    assert project.bay.run("verify", "fraud-detector@1").returncode == 0


def test_a_tampered_bento_is_refused_by_serve_and_by_the_service_itself(project: Project) -> None:
    (model_file,) = project.home.glob("bentoml/models/fraud-detector/v1/signed/model.skops")
    original = _flip_byte(model_file)
    try:
        assert "the packaged copy" in serve_refuses(project, "fraud-detector@1")
        # Bypassing launchbay: the service verifies at start-up and the server stops.
        port = free_port()
        env = {
            **project.bay.environ(),
            "BENTOML_HOME": str(project.home / "bentoml"),
            "LAUNCHBAY_MODEL": "fraud-detector:v1",
            "LAUNCHBAY_TRUSTED_KEYS": str(project.home / "keys" / "signing-key.pub"),
        }
        direct = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "fraud-detector:v1", "--port", str(port)],
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = direct.communicate(timeout=120)
        finally:
            if direct.poll() is None:
                os.killpg(direct.pid, signal.SIGKILL)
        assert (
            "refusing to serve fraud-detector:v1: model files differ from what was signed: "
            "changed: model.skops" in out
        )
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    finally:
        model_file.write_bytes(original)


def test_a_flipped_byte_in_the_onnx_variant_is_refused_by_the_lean_runtime(project: Project) -> None:
    (graph,) = project.home.glob("bentoml/models/fraud-detector/v1/signed/onnx/model.onnx")
    original = _flip_byte(graph)
    try:
        assert "the packaged copy" in serve_refuses(project, "fraud-detector@1", "lean")
        # Bypassing launchbay: the lean runtime verifies before it loads, and never listens.
        port = free_port()
        env = {
            **project.bay.environ(),
            "BENTOML_HOME": str(project.home / "bentoml"),
            "LAUNCHBAY_MODEL": "fraud-detector:v1",
            "LAUNCHBAY_TRUSTED_KEYS": str(project.home / "keys" / "signing-key.pub"),
        }
        (src,) = project.home.glob("bentoml/bentos/fraud-detector/v1/src")
        direct = subprocess.run(
            [sys.executable, "-m", "launchbay.serving.lean", "--port", str(port)],
            cwd=src, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert direct.returncode == 1
        assert "model files differ from what was signed: changed: onnx/model.onnx" in direct.stderr
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    finally:
        graph.write_bytes(original)
