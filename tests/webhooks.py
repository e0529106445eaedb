"""A webhook receiver for the tests: a real HTTP server on a free port that records what it gets."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A webhook receiver: answers `codes` in turn (then 200), or sleeps `hang` seconds first."""

    def __init__(self, codes: list[int] | None = None, hang: float = 0.0) -> None:
        self.codes = list(codes or [])
        self.hang = hang
        self.got: list[dict[str, Any]] = []
        self.arrived = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.arrived += 1
                if outer.hang:
                    time.sleep(outer.hang)
                code = outer.codes.pop(0) if outer.codes else 200
                outer.got.append({"path": self.path, "body": body, "code": code})
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"try later")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self, path: str = "/") -> list[dict[str, Any]]:
        return [g["body"] for g in self.got if g["path"] == path and g["code"] == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
