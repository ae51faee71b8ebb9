"""What the load test sends the function, and the loopback image server for ``{"url"}`` requests.

The function (lambda_src/handler.py) takes the original project's direct request
``{"url": "https://..."}`` and an API Gateway / Function URL event whose body is the image,
base64 encoded (``isBase64Encoded: true``, ``Content-Type: image/jpeg``).
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PAYLOADS = ("image", "url")


def url_event(url: str) -> bytes:
    return json.dumps({"url": url}).encode()


def image_event(jpeg: bytes) -> bytes:
    """An HTTP API (payload format 2.0) event carrying the JPEG as its body."""
    return json.dumps(
        {
            "version": "2.0",
            "routeKey": "POST /classify",
            "rawPath": "/classify",
            "headers": {"content-type": "image/jpeg"},
            "body": base64.b64encode(jpeg).decode("ascii"),
            "isBase64Encoded": True,
        }
    ).encode()


def sample_jpeg(path: str | Path | None = None) -> bytes:
    """The JPEG at `path`, else the one the serving benchmarks send (`ops.synth.sample_jpeg`:
    a 500x375 synthetic dog)."""
    if path:
        return Path(path).read_bytes()
    from ops.synth import sample_jpeg as synthetic

    return synthetic()


class ImageServer:
    """Serves one JPEG at ``/dog.jpg`` on 127.0.0.1 (a free port), for ``{"url"}`` requests
    against a local cloud. The endpoint's model server fetches it, which it allows for loopback
    only when told to (``INFERENCE_URL_ALLOW_NETWORKS=127.0.0.0/8`` in the local cloud's
    environment); a function on AWS cannot reach it: give a public image URL there."""

    def __init__(self, jpeg: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/dog.jpg":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(jpeg)))
                self.end_headers()
                self.wfile.write(jpeg)

            def log_message(self, format: str, *args) -> None:  # one line per request: no
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/dog.jpg"

    def start(self) -> ImageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
