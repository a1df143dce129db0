"""A local HTTP live view: ``/`` (a page that redraws once a second) and ``/api/state`` (JSON).

The standard library's threaded HTTP server is enough for a handful of browsers on a LAN and adds
no dependency to the gateway's install.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from csi_edge.report import NodeReport


class HttpSink:
    """Serves the latest report of every node; ``port=0`` picks a free port (see ``.port``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, dict] = {}
        self._page = resources.files("csi_edge.sinks").joinpath("live.html").read_bytes()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", sink._page)
                elif self.path == "/api/state":
                    self._send(200, "application/json", json.dumps(sink.snapshot()).encode())
                else:
                    self._send(404, "text/plain", b"not found: try / or /api/state\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep the console for the gateway's own view
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="csi-edge-http", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def snapshot(self) -> dict:
        with self._lock:
            return {"t": time.time(), "nodes": dict(self._latest)}

    def publish(self, reports: list[NodeReport]) -> None:
        with self._lock:
            for r in reports:
                self._latest[r.node] = r.to_json()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
