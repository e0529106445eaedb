"""Serverless function handlers: AWS Lambda and Azure Functions, the lean runtime's API in a function.

A function package (`serving/function_package.py`) holds this code, the user's model code and the
signed model directory (`model/`). On a cold start the handler verifies the model against the
trusted keys of the deployment -- `$LAUNCHBAY_TRUSTED_KEYS` (paths) or `$LAUNCHBAY_TRUSTED_KEY_PEMS`
(the public keys' PEM text, what a function's configuration can carry) -- and loads it once; a
model that does not verify is never loaded, and every request is answered 503 with the reason.

* AWS Lambda (`handler`): API Gateway REST events (payload 1.0), HTTP API and Function URL events
  (payload 2.0); `POST /predict` (or `/`) answers like the HTTP runtime, `GET /healthz` is 200.
* Azure Functions (`azure_answer`): called from the generated `function_app.py` (Python v2
  programming model, HTTP trigger) with the request's method, route, content type and body.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from launchbay.serving.lean_core import LeanService, Refused, trusted_keys_from_env

PEMS_ENV = "LAUNCHBAY_TRUSTED_KEY_PEMS"
MODEL_DIR_ENV = "LAUNCHBAY_MODEL_DIR"
PACKAGE_ROOT = Path(__file__).parents[2]
"""The function package's root: `launchbay/` sits there beside `model/` and the user's code."""

_service: LeanService | None = None
_refused: str | None = None


def trusted_keys() -> list[Path]:
    """The deployment's trusted keys: paths, or PEM text written to private files on first use."""
    keys = trusted_keys_from_env()
    pems = os.environ.get(PEMS_ENV, "").strip()
    if pems:
        directory = Path(tempfile.mkdtemp(prefix="launchbay-keys-"))  # 0700; a function's /tmp
        blocks = [b for b in pems.split("-----END PUBLIC KEY-----") if b.strip()]
        for i, block in enumerate(blocks):
            path = directory / f"trusted-{i}.pub"
            path.write_text(block.strip() + "\n-----END PUBLIC KEY-----\n")
            keys.append(path)
    return keys


def service() -> LeanService | None:
    """The verified, loaded model of this package (once per container); None when refused."""
    global _service, _refused
    if _service is None and _refused is None:
        model_dir = Path(os.environ.get(MODEL_DIR_ENV) or PACKAGE_ROOT / "model")
        try:
            _service = LeanService(
                model_dir, trusted_keys(), int(os.environ.get("LAUNCHBAY_MAX_BATCH", "64"))
            )
        except Refused as exc:
            _refused = str(exc)
            print(_refused, file=sys.stderr, flush=True)  # the function's log says why
    return _service


def answer(
    method: str, path: str, content_type: str | None, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """One request, any platform: status, headers and body."""
    svc = service()
    if svc is None:
        doc = {"error": "this function refuses to serve its model", "detail": _refused or ""}
        return 503, {"content-type": "application/json"}, json.dumps(doc).encode()
    headers = {"content-type": "application/json", "x-launchbay-version": svc.version}
    route = "/" + path.strip("/").rsplit("/", 1)[-1] if path.strip("/") else "/"
    if route in ("/", "/predict"):
        if method.upper() != "POST":
            return (
                405,
                {**headers, "allow": "POST"},
                b'{"error":"method not allowed","detail":"POST a JSON body"}',
            )
        try:
            result = svc.predict(body, content_type)
        except Exception as exc:  # the model failed: a 5xx, which is what a canary's error rate counts
            return 500, headers, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
        return result.status, headers, result.encoded()
    if route in ("/healthz", "/livez", "/readyz") and method.upper() in ("GET", "HEAD"):
        return 200, {**headers, "content-type": "text/plain"}, b""
    return 404, headers, b'{"error":"not found"}'


def emf(status: int, seconds: float) -> str:
    """One request as a CloudWatch embedded-metric-format log line: requests, server errors and
    latency per model version, at one-second resolution (what the function target's analysis
    reads back through Prometheus' CloudWatch exporter; client mistakes are not server errors)."""
    svc = _service
    metrics = [
        {"Name": "requests", "Unit": "Count", "StorageResolution": 1},
        {"Name": "server_errors", "Unit": "Count", "StorageResolution": 1},
        {"Name": "latency_ms", "Unit": "Milliseconds", "StorageResolution": 1},
    ]
    doc = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": "launchbay", "Dimensions": [["model", "version"]], "Metrics": metrics}
            ],
        },
        "model": svc.model if svc else "",
        "version": svc.version if svc else "",
        "requests": 1,
        "server_errors": int(status >= 500),
        "latency_ms": round(seconds * 1000, 3),
        "status": status,
    }
    return json.dumps(doc, separators=(",", ":"))


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda's entry point for API Gateway (1.0) and HTTP API / Function URL (2.0) events."""
    started = time.perf_counter()
    if event.get("version") == "2.0":
        method = event.get("requestContext", {}).get("http", {}).get("method", "GET")
        path = event.get("rawPath") or "/"
    else:
        method, path = event.get("httpMethod", "GET"), event.get("path") or "/"
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    status, out_headers, out = answer(method, path, headers.get("content-type"), body)
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # in Lambda: the log line is the metric
        print(emf(status, time.perf_counter() - started), flush=True)
    return {"statusCode": status, "headers": out_headers, "body": out.decode(), "isBase64Encoded": False}


def azure_answer(
    method: str, route: str, content_type: str | None, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Azure Functions' HTTP trigger (the generated function_app.py calls this)."""
    return answer(method, route, content_type, body)
