"""Servers the hostile-input tests run on loopback.

- `HostileImageServer`: serves the corpus images at ``/image/<file>`` and misbehaves at
  ``/hostile/<name>`` (drips, stalls, endless bodies, redirects to refused places, lies about
  lengths). It binds 127.0.0.2, the only address the tests allow the model server to fetch
  from, so that every spelling of 127.0.0.1 must still be refused.
- `RuntimeShim`: SageMaker runtime's ``InvokeEndpoint`` (``POST /endpoints/<name>/invocations``)
  in front of a real model server, answering a model's error status as AWS does: HTTP 424,
  ``x-amzn-ErrorType: ModelError`` and ``OriginalStatusCode``/``OriginalMessage``. Only the
  wire format is imitated; the model behind it is real.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
HOSTILE_HOST = "127.0.0.2"
DRIP_INTERVAL_S = 0.25
STALL_S = 20.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stopping: threading.Event

    def start(self) -> str:
        self.stopping = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def drip(self, data: bytes) -> None:
        """Write ``data`` a byte at a time until the client gives up or the server stops."""
        for byte in data:
            if self.server.stopping.wait(DRIP_INTERVAL_S):
                return
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return


class _HostileHandler(_Quiet):
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/image/"):
            file = CORPUS / "images" / Path(path).name
            if file.is_file():
                self.answer(200, file.read_bytes(), {"Content-Type": "image/jpeg"})
            else:
                self.answer(404, b"no such image")
            return
        behaviour = getattr(
            self, "hostile_" + path.removeprefix("/hostile/").replace("-", "_"), None
        )
        if behaviour is None:
            self.answer(404, b"no such behaviour")
            return
        behaviour()

    # --- behaviours, named as in tests/corpus/urls.jsonl ---

    def _origin(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _jpeg(self) -> bytes:
        return (CORPUS / "images" / "jpeg-valid-baseline.jpg").read_bytes()

    def hostile_drip_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.flush()
        self.drip(self._jpeg()[:1000])

    def hostile_drip_headers(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self.wfile.flush()
        self.drip(b"Content-Type: image/jpeg\r\nX-Padding: " + b"p" * 200 + b"\r\n\r\n")

    def hostile_drip_status_line(self) -> None:
        self.drip(b"HTTP/1.1 200 OK  " + b" " * 200)

    def hostile_stall_before_headers(self) -> None:
        self.server.stopping.wait(STALL_S)

    def hostile_stall_mid_body(self) -> None:
        body = self._jpeg()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.server.stopping.wait(STALL_S)

    def hostile_huge_declared_length(self) -> None:
        self.answer(200, b"x", {"Content-Length": str(10**12)})

    def _endless(self, chunked: bool) -> None:
        self.send_response(200)
        self.send_header(
            "Transfer-Encoding" if chunked else "Connection", "chunked" if chunked else "close"
        )
        self.end_headers()
        block = b"\xff" * 65536
        frame = (b"10000\r\n" + block + b"\r\n") if chunked else block
        deadline = time.monotonic() + STALL_S
        try:
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                self.wfile.write(frame)
        except OSError:
            pass

    def hostile_endless_chunked(self) -> None:
        self._endless(chunked=True)

    def hostile_endless_unsized(self) -> None:
        self._endless(chunked=False)
        self.close_connection = True

    def _redirect(self, location: str | None) -> None:
        self.answer(302, b"", {"Location": location} if location is not None else {})

    def hostile_redirect_loop(self) -> None:
        self._redirect("/hostile/redirect-loop")

    def hostile_redirect_to_loopback(self) -> None:
        self._redirect(
            f"http://127.0.0.1:{self.server.server_address[1]}/image/jpeg-valid-baseline.jpg"
        )

    def hostile_redirect_to_metadata(self) -> None:
        self._redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/")

    def hostile_redirect_to_6to4_metadata(self) -> None:
        self._redirect("http://[2002:a9fe:a9fe::1]/latest/meta-data/")

    def hostile_redirect_to_file(self) -> None:
        self._redirect("file:///etc/passwd")

    def hostile_redirect_to_gopher(self) -> None:
        self._redirect("gopher://127.0.0.1:6379/_FLUSHALL")

    def hostile_redirect_without_location(self) -> None:
        self._redirect(None)

    def hostile_redirect_malformed_location(self) -> None:
        self._redirect("http://[::1")

    def hostile_redirect_to_port_0(self) -> None:
        self._redirect(f"http://{HOSTILE_HOST}:0/image/jpeg-valid-baseline.jpg")

    def hostile_redirect_to_good_image(self) -> None:
        self._redirect("/image/jpeg-valid-baseline.jpg")

    def hostile_close_before_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.close_connection = True

    def hostile_short_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(self._jpeg()[:10])
        self.close_connection = True

    def hostile_status_500(self) -> None:
        self.answer(500, b"boom")

    def hostile_status_404(self) -> None:
        self.answer(404, b"missing")

    def hostile_status_204(self) -> None:
        self.send_response(204)
        self.end_headers()

    def hostile_status_206(self) -> None:
        self.answer(206, self._jpeg()[:100])

    def hostile_html_page(self) -> None:
        self.answer(200, b"<html>not a dog</html>", {"Content-Type": "text/html"})

    def hostile_bad_content_length(self) -> None:
        self.answer(200, b"<html>x</html>", {"Content-Length": "abc", "Connection": "close"})
        self.close_connection = True

    def hostile_superscript_content_length(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "\xb2")  # latin-1 on the wire: a superscript two
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"<html>x</html>")
        self.close_connection = True

    def hostile_not_http(self) -> None:
        self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        self.close_connection = True

    def hostile_good_image_chunked(self) -> None:
        body = self._jpeg()
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), 500):
            part = body[start : start + 500]
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def hostile_gzip_encoded_bomb(self) -> None:
        import gzip

        bomb = gzip.compress(b"\x00" * (50 * 1024 * 1024), 9)
        self.answer(200, bomb, {"Content-Encoding": "gzip", "Content-Type": "image/jpeg"})


class HostileImageServer:
    def __init__(self) -> None:
        self._server = _Server((HOSTILE_HOST, 0), _HostileHandler)

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()


class _ShimHandler(_Quiet):
    model: str  # http://host:port of the model server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if not self.path.startswith("/endpoints/") or not self.path.endswith("/invocations"):
            self.answer(404, b'{"message": "unknown operation"}')
            return
        parts = urlsplit(self.model)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        headers = {
            "Content-Type": self.headers.get("Content-Type", "application/octet-stream"),
            "Accept": self.headers.get("Accept", "application/json"),
        }
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        connection.close()
        if response.status == 200:
            self.answer(200, answer, {"Content-Type": "application/json"})
            return
        kind = "client" if response.status < 500 else "server"
        error = {
            "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
            "Message": f"Received {kind} error ({response.status}) from primary with message "
            f'"{answer.decode("utf-8", "replace")}". See the log for details.',
            "OriginalStatusCode": response.status,
            "OriginalMessage": answer.decode("utf-8", "replace"),
            "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/x",
        }
        self.answer(
            424,
            json.dumps(error).encode(),
            {"Content-Type": "application/json", "x-amzn-ErrorType": "ModelError"},
        )


class RuntimeShim:
    def __init__(self, model: str) -> None:
        handler = type("Handler", (_ShimHandler,), {"model": model})
        self._server = _Server(("127.0.0.1", 0), handler)

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()
