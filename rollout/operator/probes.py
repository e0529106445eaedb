"""The cluster controller's one HTTP port: `/healthz` (liveness), `/readyz`, `/metrics`.

Liveness is the loop's progress, not the server's: the probes are answered by this thread, so a
hung round (an API call without a timeout, a deadlock) must make `/healthz` fail for the kubelet
to restart the pod -- it does once no round has completed for `Health.stall_after` seconds.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from launchbay.rollout.operator.loop import Health


def serve(
    port: int, health: Health, registry: CollectorRegistry, host: str = "0.0.0.0"
) -> ThreadingHTTPServer:
    """Start the port in a daemon thread; the server (its `server_address`, `shutdown`)."""
    leader = Gauge("launchbay_controller_leader", "1 while this replica holds the lease", registry=registry)
    since = Gauge(
        "launchbay_controller_seconds_since_round",
        "Seconds since this replica last completed a round or lease attempt",
        registry=registry,
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            live, why = health.live()
            if self.path == "/healthz":
                self._send(200 if live else 503, json.dumps({"live": live, "why": why}).encode())
            elif self.path == "/readyz":
                ok = live and health.ready
                doc = {"ready": ok, "leading": health.leading, "error": health.last_error, "why": why}
                self._send(200 if ok else 503, json.dumps(doc).encode())
            elif self.path == "/metrics":
                leader.set(1 if health.leading else 0)
                since.set(max(0.0, time.monotonic() - health.last_progress))
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b'{"error": "not found"}')

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    return server
