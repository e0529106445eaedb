"""The edge runtime: the signed ONNX variant on a device -- a local call, or HTTP from the standard library.

    python -m launchbay.serving.edge --trusted-key K.pub --row '{"amount": 12.5, ...}'
    python -m launchbay.serving.edge --trusted-key K.pub --serve --port 8080

It needs onnxruntime, numpy and cryptography (for the signature), nothing else: no BentoML, no
pydantic, no web framework. Every start verifies the model directory first (exit 1 naming what
changed); the answers, the 400s and the 415 are the HTTP runtime's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from launchbay.serving.lean_core import LeanService, Refused


class EdgeModel:
    """A verified, loaded model for local calls."""

    def __init__(self, service: LeanService) -> None:
        self.service = service

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"row": {...}}` or `{"rows": [...]}` -> the answer (raises ValueError for a client mistake)."""
        answer = self.service.answer(body)
        if answer.status != 200:
            raise ValueError(answer.body.get("detail") or answer.body["error"])
        return answer.body


def load(model_dir: str | Path, trusted_keys: Sequence[str | Path], max_rows: int = 64) -> EdgeModel:
    """Verify `model_dir` against the keys, then load its ONNX variant.

    Raises:
        Refused: the signature does not verify, or the model does not load.
    """
    return EdgeModel(LeanService(Path(model_dir), [Path(k) for k in trusted_keys], max_rows))


def _http(service: LeanService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.rstrip("/") not in ("", "/predict"):
                self._send(404, b'{"error":"not found"}')
                return
            answer = service.predict(body, self.headers.get("content-type"))
            self._send(answer.status, answer.encoded())

        def do_GET(self) -> None:
            if self.path in ("/healthz", "/livez", "/readyz"):
                self._send(200, b"", "text/plain")
            else:
                self._send(404, b'{"error":"not found"}')

        def log_message(self, *_args: Any) -> None:
            pass  # a device's log is its own business

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Verify, load, then answer one row or serve HTTP."""
    parser = argparse.ArgumentParser(
        prog="python -m launchbay.serving.edge", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--trusted-key", action="append", required=True, help="a public key to verify with")
    parser.add_argument("--row", help="one row as a JSON object: print the answer and exit")
    parser.add_argument("--serve", action="store_true", help="answer POST /predict over HTTP")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    try:
        model = load(args.model_dir, args.trusted_key)
    except Refused as exc:
        print(str(exc), file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    if args.row is not None:
        try:
            print(json.dumps(model.predict({"row": json.loads(args.row)})))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    if not args.serve:
        parser.error("give --row JSON or --serve")
    server = ThreadingHTTPServer((args.host, args.port), _http(model.service))
    print(
        f"serving {model.service.model} v{model.service.version} on http://{args.host}:{args.port}",
        file=sys.stderr,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


if __name__ == "__main__":
    main()
