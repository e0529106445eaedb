"""A tiny stand-in model server process: `python tiny_model.py PORT VERSION [START_DELAY [LINGER]]`.

Answers /readyz and POST /predict in launchbay's response shape after START_DELAY seconds, like a
server that takes a while to load its model. With LINGER, it has a worker child that takes LINGER
seconds to exit after SIGTERM, outliving its parent like a real server's workers. Used to test
what the gateway does with processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    port, version = int(sys.argv[1]), sys.argv[2]
    linger = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    if linger:
        worker = (
            "import signal, sys, time; "
            f"signal.signal(signal.SIGTERM, lambda *_: (time.sleep({linger}), sys.exit())); time.sleep(3600)"
        )
        subprocess.Popen([sys.executable, "-c", worker])
    time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, doc: dict[str, object]) -> None:
            data = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"ready": True})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send({"model": "m", "version": version, "predictions": [{"prediction": 1, "score": 0.9}]})

        def log_message(self, *_args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
