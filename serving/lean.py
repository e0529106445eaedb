"""The lean HTTP runtime: one model version on uvicorn, the BentoML service's API without BentoML.

    python -m launchbay.serving.lean --host 127.0.0.1 --port 3000

Run from a Bento's `src/` (the Bento stays the package: launchbay's serving code and the user's
model code come from it), with the environment a BentoML server gets: `$LAUNCHBAY_MODEL` (the
model's tag) in `$BENTOML_HOME`'s store, `$LAUNCHBAY_TRUSTED_KEYS`, `$LAUNCHBAY_MAX_BATCH`; or
`--model-dir` for a signed model directory anywhere. The signature is verified before the model
is loaded; a model that does not verify exits 1 without ever listening.

The API is the BentoML service's: `POST /predict` (`row` or `rows`), `/healthz`, `/livez`,
`/readyz`, `/docs.json` (the same OpenAPI document) and `/metrics` with the same names
(`bentoml_service_request_total`, `bentoml_service_request_duration_seconds`,
`launchbay_prediction_score`, `launchbay_predictions_total`), so the gateway, Prometheus, the
analysis and a cluster's dashboards cannot tell the runtimes apart -- except by their speed. A
raw ASGI app, no framework: on a 1-row request the framework would be most of the work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from launchbay.serving.answer_log import AnswerLogMiddleware, kept_from_env, size_from_env
from launchbay.serving.lean_core import (
    MODEL_ENV,
    LeanService,
    Refused,
    bento_model_dir,
    trusted_keys_from_env,
)
from launchbay.serving.metric_names import PREDICTION_SCORE, PREDICTIONS
from launchbay.serving.request_sample import RequestSampleMiddleware
from launchbay.serving.request_sample import from_env as capture_from_env

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_HEALTH = {"/healthz", "/livez", "/readyz"}
_GETS = {*_HEALTH, "/metrics", "/docs.json"}
_ALLOW_POST = [*_JSON, (b"allow", b"POST")]
_ALLOW_GET = [*_JSON, (b"allow", b"GET, HEAD")]
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""BentoML 1.4's own request-duration buckets (the cluster's queries read this histogram)."""
SCORE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0)


class Metrics:
    """The BentoML service's metrics, by the same names and labels."""

    def __init__(self, service: LeanService) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        labels = ["endpoint", "service_name", "service_version"]
        self.total = Counter(
            "bentoml_service_request", "Total number of requests", [*labels, "http_response_code"],
            registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "bentoml_service_request_duration_seconds", "Request duration in seconds",
            [*labels, "http_response_code"], buckets=DURATION_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_progress = Gauge(
            "bentoml_service_request_in_progress", "Requests in progress", labels, registry=self.registry
        )
        self.scores = Histogram(
            PREDICTION_SCORE,
            "Scores returned per version (binary: positive class; multiclass: predicted class)",
            ["model", "version"], buckets=SCORE_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.classes = Counter(
            PREDICTIONS, "Predictions returned, per model version and predicted class",
            ["model", "version", "predicted_class"], registry=self.registry,
        )  # fmt: skip
        self.service = (service.model, f"v{service.version}")  # the Bento's name and version
        self.model = (service.model, service.version)
        # Label lookups cost microseconds each (a lock and a dict), a visible share of a 1-row
        # request: the children are looked up once per status code and class, then kept.
        self._requests: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._classes: dict[str, Any] = {}
        self._score = self.scores.labels(*self.model)
        self.predicting = self.in_progress.labels("/predict", *self.service)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        children = self._requests.get((endpoint, status))
        if children is None:
            labels = (endpoint, *self.service, str(status))
            children = self._requests[(endpoint, status)] = (
                self.total.labels(*labels),
                self.duration.labels(*labels),
            )
        children[0].inc()
        children[1].observe(seconds)

    def predictions(self, predictions: list[dict[str, Any]]) -> None:
        """Count what was answered (values have no class and no score)."""
        for p in predictions:
            if "score" in p:
                self._score.observe(p["score"])
                label = str(p["prediction"])
                counter = self._classes.get(label)
                if counter is None:
                    counter = self._classes[label] = self.classes.labels(*self.model, label)
                counter.inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        from prometheus_client import generate_latest

        data: bytes = generate_latest(self.registry)
        return data


class LeanApp:
    """The ASGI application around one `LeanService`."""

    def __init__(self, service: LeanService) -> None:
        self.service = service
        self.metrics = Metrics(service)
        self._docs: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/predict":
            if method != "POST":
                await _send(
                    send, 405, b'{"error":"method not allowed","detail":"POST a JSON body"}', _ALLOW_POST
                )
                return
            await self._predict(scope, receive, send)
        elif path in _GETS and method not in ("GET", "HEAD"):
            await _send(send, 405, b'{"error":"method not allowed","detail":"GET it"}', _ALLOW_GET)
        elif path in _HEALTH:
            await _send(send, 200, b"", [(b"content-type", b"text/plain")])
        elif path == "/metrics":
            text = [(b"content-type", b"text/plain; version=0.0.4")]
            await _send(send, 200, self.metrics.exposition(), text)
        elif path == "/docs.json":
            await _send(send, 200, self.docs())
        else:
            await _send(send, 404, b'{"error":"not found"}')

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        gauge = self.metrics.predicting
        gauge.inc()
        try:
            body = await _body(receive)
            content_type = None
            for k, v in scope.get("headers", ()):
                if k == b"content-type":
                    content_type = v.decode("latin-1")
            try:
                answer = self.service.predict(body, content_type)
            except Exception as exc:  # the model failed: a 5xx, which is what the rollout counts
                await _send(send, 500, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
                self.metrics.request("/predict", 500, time.perf_counter() - started)
                return
            await _send(send, answer.status, answer.encoded())
            if answer.predictions is not None:
                self.metrics.predictions(answer.predictions)
            self.metrics.request("/predict", answer.status, time.perf_counter() - started)
        finally:
            gauge.dec()

    def docs(self) -> bytes:
        """The OpenAPI document (built on first request: it needs pydantic, a cold start does not)."""
        if self._docs is None:
            from launchbay.serving.openapi import document

            self._docs = json.dumps(document(self.service.model_dir, self.service.max_rows)).encode()
        return self._docs


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [*(headers if headers is not None else _JSON), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def model_dir_from_env() -> Path:
    """The signed model directory `$LAUNCHBAY_MODEL` names in `$BENTOML_HOME`'s store."""
    tag = os.environ.get(MODEL_ENV)
    home = os.environ.get("BENTOML_HOME")
    if not tag or not home:
        raise Refused(f"{MODEL_ENV} and BENTOML_HOME name the model to serve (or give --model-dir)")
    return bento_model_dir(tag, Path(home))


def main(argv: list[str] | None = None) -> None:
    """Verify, load and serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m launchbay.serving.lean", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--model-dir", type=Path, help="a signed model directory (default: from the Bento store)"
    )
    args = parser.parse_args(argv)
    try:
        model_dir = args.model_dir or model_dir_from_env()
        service = LeanService(
            model_dir, trusted_keys_from_env(), int(os.environ.get("LAUNCHBAY_MAX_BATCH", "64"))
        )
    except Refused as exc:
        print(str(exc), file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    import uvicorn

    print(
        f"serving {service.model} v{service.version} ({service.variant}) on http://{args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    app: Any = LeanApp(service)
    if size := size_from_env(os.environ):  # a cluster's shadow: answers kept for the controller's join
        app = AnswerLogMiddleware(app, size, kept_from_env(dict(os.environ)))
    if (capture := capture_from_env(os.environ)).size:  # a cluster's replay before shadow
        app = RequestSampleMiddleware(app, capture)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
