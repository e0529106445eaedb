"""Function packages and the edge bundle, run the way their platforms run them, with real event shapes."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from model_dirs import flip_byte, signed_example
from projects import RISKY_ROW

from launchbay.errors import UsageError
from launchbay.serving import function_package as fp
from launchbay.serving.package import service_sources

FUNCTION_URL_EVENT = {  # AWS Lambda Function URL, payload format 2.0 (as AWS documents it)
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/predict",
    "rawQueryString": "",
    "headers": {"content-type": "application/json", "host": "abc.lambda-url.eu-west-1.on.aws"},
    "requestContext": {
        "accountId": "anonymous",
        "apiId": "abc",
        "domainName": "abc.lambda-url.eu-west-1.on.aws",
        "http": {"method": "POST", "path": "/predict", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
        "requestId": "id",
        "routeKey": "$default",
        "stage": "$default",
        "timeEpoch": 1767225600000,
    },
    "body": json.dumps({"row": RISKY_ROW}),
    "isBase64Encoded": False,
}
REST_EVENT = {  # API Gateway REST API, payload format 1.0
    "resource": "/predict",
    "path": "/prod/predict",
    "httpMethod": "POST",
    "headers": {"Content-Type": "application/json"},
    "multiValueHeaders": {"Content-Type": ["application/json"]},
    "queryStringParameters": None,
    "requestContext": {"stage": "prod", "httpMethod": "POST", "resourcePath": "/predict"},
    "body": json.dumps({"rows": [RISKY_ROW, {**RISKY_ROW, "hour": 25}]}),
    "isBase64Encoded": False,
}


def _run(directory: Path, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Python in `directory` with nothing of the checkout on its path: the package's own code only."""
    base = {"PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=directory, env=base, capture_output=True, text=True, timeout=120
    )


LAMBDA = """
import json, sys
from launchbay_handler import handler
for line in sys.stdin:
    print(json.dumps(handler(json.loads(line), None)))
"""


def _invoke(directory: Path, key: Path, *events: dict[str, Any]) -> list[dict[str, Any]]:
    env = {
        "PATH": "/usr/bin:/bin",
        "LAUNCHBAY_TRUSTED_KEY_PEMS": key.read_text(),
        "PYTHONPATH": str(directory),
    }
    res = subprocess.run(
        [sys.executable, "-c", LAMBDA], cwd=directory, env=env, capture_output=True, text=True, timeout=120,
        input="".join(json.dumps(e) + "\n" for e in events),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_the_lambda_zip_answers_function_url_and_api_gateway_events(
    bento: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    src, signed, key = bento
    pkg = fp.lambda_package(src, signed, tmp_path / "out", "fraud-detector-v1")
    assert pkg.variant == "onnx" and any(r.startswith("onnxruntime==") for r in pkg.requirements)
    task = tmp_path / "task"  # what Lambda unpacks into /var/task
    zipfile.ZipFile(pkg.archive).extractall(task)
    assert (task / "launchbay_handler.py").is_file() and (task / "model" / "onnx" / "model.onnx").is_file()
    url, rest, health = _invoke(
        task,
        key,
        FUNCTION_URL_EVENT,
        REST_EVENT,
        {**FUNCTION_URL_EVENT, "rawPath": "/healthz", "requestContext": {"http": {"method": "GET"}}},
    )
    assert url["statusCode"] == 200, url
    body = json.loads(url["body"])
    assert body["predictions"][0]["prediction"] == 1 and url["headers"]["x-launchbay-version"] == "1"
    assert rest["statusCode"] == 400 and "rows.1.hour" in json.loads(rest["body"])["detail"]
    assert health["statusCode"] == 200
    assert "FROM public.ecr.aws/lambda/python:3.11" in (pkg.directory / "Dockerfile").read_text()


def test_the_lambda_handler_refuses_a_tampered_model(bento: tuple[Path, Path, Path], tmp_path: Path) -> None:
    src, signed, key = bento
    pkg = fp.lambda_package(src, signed, tmp_path / "out", "fraud-detector-v1")
    task = tmp_path / "task"
    zipfile.ZipFile(pkg.archive).extractall(task)
    flip_byte(task / "model" / "onnx" / "model.onnx")
    (refused,) = _invoke(task, key, FUNCTION_URL_EVENT)
    assert refused["statusCode"] == 503
    assert "changed: onnx/model.onnx" in json.loads(refused["body"])["detail"]


AZURE = """
import json, sys
import azure.functions as func
import function_app
fns = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}
req = func.HttpRequest(method="POST", url="/api/predict", headers={"content-type": "application/json"},
                       body=sys.argv[1].encode())
res = fns["predict"](req)
print(json.dumps({"status": res.status_code, "body": res.get_body().decode(), "headers": dict(res.headers)}))
"""


def test_the_azure_app_answers_its_http_trigger_and_refuses_a_tampered_model(
    bento: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    import azure.functions  # the Python worker's own library (a dev dependency here)

    src, signed, key = bento
    pkg = fp.azure_package(src, signed, tmp_path / "out", "fraud-detector-v1")
    assert json.loads((pkg.directory / "host.json").read_text())["version"] == "2.0"
    site = str(Path(azure.functions.__file__).parents[1])  # azure-functions only, not the checkout
    env = {"LAUNCHBAY_TRUSTED_KEY_PEMS": key.read_text(), "PYTHONPATH": f"{pkg.directory}:{site}"}
    ok = _run(pkg.directory, AZURE.replace("sys.argv[1]", repr(json.dumps({"row": RISKY_ROW}))), env)
    assert ok.returncode == 0, ok.stderr
    answer = json.loads(ok.stdout)
    assert answer["status"] == 200 and json.loads(answer["body"])["predictions"][0]["prediction"] == 1
    flip_byte(pkg.directory / "model" / "serving.json")
    refused = _run(pkg.directory, AZURE.replace("sys.argv[1]", repr("{}")), env)
    assert json.loads(refused.stdout)["status"] == 503 and "changed: serving.json" in refused.stdout


CLEAN = {"PATH": "/usr/bin:/bin"}
EDGE_IMPORTS = """
import json, sys
from launchbay.serving.edge import load
model = load("model", [sys.argv[1]])
print(json.dumps(model.predict({"row": json.loads(sys.argv[2])})))
heavy = ("sklearn", "pandas", "mlflow", "bentoml", "pydantic", "model_signing", "uvicorn", "yaml")
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))))
"""


def test_the_edge_bundle_answers_a_local_call_with_onnxruntime_numpy_and_cryptography_only(
    bento: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    src, signed, key = bento
    pkg = fp.edge_bundle(src, signed, tmp_path / "out", "fraud-detector-v1")
    device = tmp_path / "device"
    with tarfile.open(pkg.archive) as tar:
        tar.extractall(device, filter="data")
    bundle = device / "fraud-detector-v1-edge"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "README.md",
        "fraud_model.py",
        "launchbay",
        "model",
        "requirements.txt",
    ]
    res = subprocess.run([sys.executable, "-c", EDGE_IMPORTS, str(key), json.dumps(RISKY_ROW)], cwd=bundle,
                         env=CLEAN, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    answer, heavy = res.stdout.splitlines()
    assert json.loads(answer)["predictions"][0]["prediction"] == 1
    assert json.loads(heavy) == []
    assert pkg.sizes_mb["archive"] < 1.0 and pkg.sizes_mb["onnx graph"] < 0.1  # the example: a few KB
    cli = subprocess.run([sys.executable, "-m", "launchbay.serving.edge", "--trusted-key", str(key),
                          "--row", json.dumps({**RISKY_ROW, "hour": "3"})], cwd=bundle,
                         env=CLEAN, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert cli.returncode == 2 and "row.hour" in cli.stderr
    flip_byte(bundle / "model" / "onnx" / "model.onnx")
    tampered = subprocess.run([sys.executable, "-m", "launchbay.serving.edge", "--trusted-key", str(key),
                               "--row", json.dumps(RISKY_ROW)], cwd=bundle, env=CLEAN,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert tampered.returncode == 1 and "changed: onnx/model.onnx" in tampered.stderr


def test_a_model_without_an_onnx_variant_gets_no_edge_bundle(tmp_path: Path) -> None:
    signed, _ = signed_example(tmp_path / "native", onnx=False)
    src = tmp_path / "src"
    service_sources(src)
    with pytest.raises(UsageError, match="has no ONNX variant"):
        fp.edge_bundle(src, signed, tmp_path / "out", "fraud-detector-v1")
