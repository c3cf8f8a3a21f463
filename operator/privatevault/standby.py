"""What a replica that is not leading serves on the liveness address: 503 "standing by".

kopf serves the health endpoint only once it runs, which a replica waiting for the Lease does not
do. Without this, a waiting replica's startup and liveness probes (TCP) would fail and the kubelet
would restart it over and over; with it, the port is open (alive) while ``/healthz`` answers 503
(not ready), so the Service sends nothing to it until it leads. It is closed before kopf binds the
same port.
"""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"standing by: another replica holds the Lease\n"
        self.send_response(503)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not worth a log line."""


class Standby:
    def __init__(self, liveness_url: str) -> None:
        parts = urllib.parse.urlsplit(liveness_url)
        self.server = ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port or 80), _Handler)  # noqa: S104
        self.thread = threading.Thread(target=self.server.serve_forever, name="privatevault-standby", daemon=True)

    def __enter__(self) -> Standby:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
