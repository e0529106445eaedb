"""A model server as small as can be, for tests that need many real ones fast: readiness and
predictions in launchbay's response shape, on a port of the caller's choosing.

    python stub_model.py PORT VERSION
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    version = "0"

    def log_message(self, *_args: object) -> None:
        pass

    def _send(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(200 if self.path in ("/readyz", "/healthz", "/livez") else 404, {"ok": True})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        prediction = {"prediction": 0, "score": 0.1}
        self._send(200, {"model": "m", "version": self.version, "predictions": [prediction]})


def main() -> None:
    port, version = int(sys.argv[1]), sys.argv[2]
    Handler.version = version
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
