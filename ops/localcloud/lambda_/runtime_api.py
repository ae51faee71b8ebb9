"""The Lambda Runtime API one execution environment polls, on its own loopback port.

The runtime interface client (awslambdaric) in the environment reads ``AWS_LAMBDA_RUNTIME_API``
(``127.0.0.1:<port>``) and speaks (LAM:runtimes-api, its OpenAPI 1.0.3; AWS-SEMANTICS.md C5):

- ``GET /2018-06-01/runtime/invocation/next``: blocks until there is an invocation; answers
  its event with ``Lambda-Runtime-Aws-Request-Id``, ``-Deadline-Ms`` (epoch ms),
  ``-Invoked-Function-Arn``, ``-Trace-Id`` and ``-Client-Context`` when the caller sent one;
- ``POST /2018-06-01/runtime/invocation/<id>/response``: the handler's result (202);
- ``POST /2018-06-01/runtime/invocation/<id>/error``: the handler raised (202), with
  ``Lambda-Runtime-Function-Error-Type``;
- ``POST /2018-06-01/runtime/init/error``: the handler could not be loaded (202); the
  runtime then exits.

A request id that is not the environment's current invocation is 400; a body over the
response limit 413. HTTP/1.1 with Content-Length on every answer (the client never completes
a call with an HTTP/1.0 server: NOTES.md). One port per environment, so the port is who is
calling; the environment (`RuntimeHost`) decides everything, this module only speaks HTTP.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from ops.localcloud import loopback

log = logging.getLogger("dogops.localcloud")
PREFIX = "/2018-06-01/runtime"
_INVOCATION = re.compile(rf"^{PREFIX}/invocation/(?P<id>[^/]+)/(?P<what>response|error)$")
MAX_RESPONSE_BYTES = 6_291_556  # what Lambda takes from the runtime (AWS-SEMANTICS.md C4)


class NextInvocation(Protocol):
    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_arn: str
    client_context: str | None
    trace_id: str


class RuntimeHost(Protocol):
    """What an execution environment answers for its runtime."""

    def next_invocation(self) -> NextInvocation | None:
        """Block until an invocation is due (None: the environment is going away)."""

    def on_response(self, request_id: str, body: bytes) -> bool:
        """The invocation's result; False if ``request_id`` is not the current invocation."""

    def on_error(self, request_id: str, body: bytes, error_type: str) -> bool: ...

    def on_too_large(self, request_id: str, size: int) -> bool: ...

    def on_init_error(self, body: bytes, error_type: str) -> None: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A runtime killed mid-request (a timeout, memory, the local cloud stopping) drops
        # its connection: not worth a traceback on stderr.
        log.debug("runtime api: a request from %s failed", client_address, exc_info=True)


class RuntimeApi:
    """Serves ``host``'s Runtime API until `close`."""

    def __init__(self, host: RuntimeHost, name: str):
        handler = type("Handler", (_Handler,), {"host": host})
        self._server = _Server((loopback.HOST, 0), handler)
        self.address = f"{loopback.HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            daemon=True,
            name=f"runtime-api-{name}",
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: with Nagle's algorithm the body would wait for
    # the client's delayed ACK (~40 ms a call, measured: bench.lambda_invoke).
    disable_nagle_algorithm = True
    host: RuntimeHost

    def log_message(self, format: str, *args) -> None:
        log.debug("runtime api: " + format, *args)

    def do_GET(self) -> None:
        if self.path != f"{PREFIX}/invocation/next":
            self._answer(404, {"errorMessage": "not found", "errorType": "NotFound"})
            return
        invocation = self.host.next_invocation()
        if invocation is None:
            # "Container error. Non-recoverable state. Runtime should exit promptly."
            self._answer(500, {"errorMessage": "the environment is stopping", "errorType": "Stop"})
            return
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.invoked_arn,
            "Lambda-Runtime-Trace-Id": invocation.trace_id,
        }
        if invocation.client_context:
            headers["Lambda-Runtime-Client-Context"] = invocation.client_context
        self._send(200, invocation.payload, "application/json", headers)

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        if self.path == f"{PREFIX}/init/error":
            self.host.on_init_error(body, self._error_type())
            self._answer(202, {"status": "OK"})
            return
        match = _INVOCATION.match(self.path)
        if match is None:
            self._answer(404, {"errorMessage": "not found", "errorType": "NotFound"})
            return
        request_id = match.group("id")
        if match.group("what") == "error":
            accepted = self.host.on_error(request_id, body, self._error_type())
        elif len(body) > MAX_RESPONSE_BYTES:
            accepted = self.host.on_too_large(request_id, len(body))
            if accepted:
                self._answer(413, {"errorMessage": "response too large", "errorType": "TooLarge"})
                return
        else:
            accepted = self.host.on_response(request_id, body)
        if not accepted:
            self._answer(
                400,
                {"errorMessage": f"invalid request id {request_id}", "errorType": "InvalidID"},
            )
            return
        self._answer(202, {"status": "OK"})

    def _error_type(self) -> str:
        return self.headers.get("Lambda-Runtime-Function-Error-Type") or "Unhandled"

    def _body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._answer(400, {"errorMessage": "bad Content-Length", "errorType": "BadRequest"})
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _answer(self, status: int, document: dict) -> None:
        self._send(status, json.dumps(document).encode(), "application/json", {})

    def _send(self, status: int, body: bytes, content_type: str, headers: dict) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the environment has gone
            self.close_connection = True
