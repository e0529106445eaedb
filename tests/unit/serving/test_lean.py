"""The lean runtime: the BentoML service's API, verified before load, without the heavy libraries."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from model_dirs import EXAMPLE, flip_byte, signed_example
from projects import RISKY_ROW

from launchbay.serving import schema
from launchbay.serving.lean import LeanApp
from launchbay.serving.lean_core import LeanService, Refused, answers
from launchbay.serving.spec import ServingSpec


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return signed_example(tmp_path_factory.mktemp("lean"))


@pytest.fixture(scope="module")
def service(signed: tuple[Path, Path]) -> LeanService:
    return LeanService(signed[0], [signed[1]])


class Client:
    """Requests to the ASGI app in this process (real HTTP semantics through httpx's transport)."""

    def __init__(self, app: LeanApp) -> None:
        self.app = app

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://lean") as c:
                return await c.request(method, path, **kw)

        return asyncio.run(go())

    def post(self, body: Any) -> httpx.Response:
        return self.request("POST", "/predict", json=body)


@pytest.fixture(scope="module")
def client(service: LeanService) -> Client:
    return Client(LeanApp(service))


def test_it_serves_the_onnx_variant_and_answers_like_the_bentoml_service(service: LeanService) -> None:
    assert service.variant == "onnx"
    answer = service.predict(
        json.dumps({"rows": [RISKY_ROW, {**RISKY_ROW, "hour": 14, "amount": 5.0}]}).encode()
    )
    assert answer.status == 200
    body = answer.body
    assert body["model"] == "unit-model" and body["version"] == "1"
    assert body["predictions"][0]["prediction"] == 1 and body["predictions"][0]["score"] > 0.9


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_answers_are_exactly_the_bentoml_services(task: str) -> None:
    rng = np.random.default_rng(3)
    if task == "regression":
        output, classes = rng.normal(size=5) * 100, None
    else:
        k = 2 if task == "binary" else 3
        output = rng.dirichlet(np.ones(k), size=5)
        classes = [0, 1] if task == "binary" else ["red", "green", "blue"]
    spec = ServingSpec(
        model="m", version="1", features={}, decision_threshold=0.4, task=task, classes=classes
    )
    expected = [a.model_dump() for a in schema.answers(spec, output)]
    assert answers(spec.model_dump(mode="json"), output) == expected


def test_the_http_api_is_the_bentoml_services(client: Client) -> None:
    ok = client.post({"row": RISKY_ROW})
    assert ok.status_code == 200 and ok.json()["predictions"][0]["prediction"] == 1
    bad = client.post({"row": {**RISKY_ROW, "hour": "3"}})
    assert bad.status_code == 400 and "row.hour" in bad.json()["detail"]
    nan = client.request(
        "POST", "/predict", content=b'{"row": {"amount": NaN}}', headers={"content-type": "application/json"}
    )
    assert nan.status_code == 400
    form = client.request("POST", "/predict", content=b"{}", headers={"content-type": "multipart/form-data"})
    assert form.status_code == 415 and "application/json" in form.json()["detail"]
    assert (client.request("GET", "/predict")).status_code == 405
    assert (client.request("GET", "/nowhere")).status_code == 404
    for probe in ("/healthz", "/livez", "/readyz"):
        assert (client.request("GET", probe)).status_code == 200


def test_its_metrics_have_the_bentoml_services_names(client: Client) -> None:
    client.post({"rows": [RISKY_ROW] * 3})
    client.post({"row": {}})
    text = (client.request("GET", "/metrics")).text
    assert 'launchbay_predictions_total{model="unit-model",predicted_class="1",version="1"}' in text
    assert 'launchbay_prediction_score_bucket{le="1.0",model="unit-model",version="1"}' in text
    assert (
        'bentoml_service_request_total{endpoint="/predict",http_response_code="400",'
        'service_name="unit-model",service_version="v1"}' in text
    )
    assert "bentoml_service_request_duration_seconds_bucket" in text


def test_its_openapi_document_states_the_same_rules(client: Client) -> None:
    docs = (client.request("GET", "/docs.json")).json()
    op = docs["paths"]["/predict"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema_ = docs["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert schema_["oneOf"] == [{"required": ["row"]}, {"required": ["rows"]}]
    assert {"200", "400", "415"} <= set(op["responses"])
    row = docs["components"]["schemas"]["Row"]
    assert row["properties"]["hour"]["maximum"] == 23 and row["additionalProperties"] is False


def test_a_flipped_byte_in_the_onnx_graph_is_refused_before_it_is_loaded(signed: tuple[Path, Path]) -> None:
    graph = signed[0] / "onnx" / "model.onnx"
    original = flip_byte(graph)
    try:
        with pytest.raises(Refused, match=r"changed: onnx/model\.onnx"):
            LeanService(signed[0], [signed[1]])
    finally:
        graph.write_bytes(original)
    LeanService(signed[0], [signed[1]])  # restored: it verifies again


def test_an_untrusted_key_is_refused(signed: tuple[Path, Path], tmp_path: Path) -> None:
    from launchbay.checks.signature import generate_keypair

    _, other = generate_keypair(tmp_path / "other")
    with pytest.raises(Refused, match="not made by any trusted key"):
        LeanService(signed[0], [other])


def test_the_cold_path_imports_neither_scikit_learn_pandas_mlflow_bentoml_nor_model_signing(
    signed: tuple[Path, Path],
) -> None:
    code = (
        "import sys, json; from pathlib import Path\n"
        "from launchbay.serving.lean import LeanApp\n"
        "from launchbay.serving.lean_core import LeanService\n"
        f"s = LeanService(Path({str(signed[0])!r}), [Path({str(signed[1])!r})])\n"
        "LeanApp(s)\n"
        f"print(json.dumps(s.predict(json.dumps({{'row': {RISKY_ROW!r}}}).encode()).status))\n"
        "heavy = ('sklearn', 'pandas', 'mlflow', 'bentoml', 'model_signing', 'skops', 'pydantic')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    env = {"PYTHONPATH": str(EXAMPLE), "PATH": "/usr/bin:/bin"}  # the user's code, as in a Bento
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    status, heavy = out.stdout.splitlines()
    assert status == "200" and json.loads(heavy) == []


def test_a_model_without_a_variant_is_served_natively_with_the_same_answers(tmp_path: Path) -> None:
    native_dir, key = signed_example(tmp_path, onnx=False)
    native = LeanService(native_dir, [key])
    assert native.variant == "native"
    body = json.dumps({"row": RISKY_ROW}).encode()
    assert native.predict(body).body["predictions"][0]["prediction"] == 1
