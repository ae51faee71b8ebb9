"""The local cloud's front door: one HTTP server on 127.0.0.1.

Requests whose ``X-Amz-Target`` names an operation we implement (see `SageMaker.OPERATIONS`) are
answered here; every other request (S3, IAM, STS, CloudWatch Logs, the rest of SageMaker, ...) is
passed unchanged to an in-process moto server on its own loopback port. Clients point boto3 at
the front door with ``AWS_ENDPOINT_URL`` and need nothing else.

``python -m ops.localcloud.server --port 0`` prints ``listening on http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpcore
import httpx
import uvicorn
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ops.jsonfile import write_atomic
from ops.localcloud import control, iam, persist
from ops.localcloud.protocol import AwsError, region_of, to_wire
from ops.localcloud.sagemaker import SageMaker
from ops.localcloud.training import TrainingRunner
from ops.model_server import bind

log = logging.getLogger("dogops.localcloud")
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
HEALTH_PATH = control.HEALTH_PATH
AMZ_JSON = "application/x-amz-json-1.1"
# Hop-by-hop headers (RFC 9110 7.6.1) and those we recompute.
_DROP_REQUEST = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "content-length",
    "expect",
}
_DROP_RESPONSE = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-encoding",
    "content-length",
    "server",
    "date",
}


@dataclass
class Intercepts:
    """Which service answers which targets: ``X-Amz-Target`` prefix -> (service, operations)."""

    sagemaker: SageMaker

    def find(self, target: str):
        service, _, operation = target.partition(".")
        if service == "SageMaker" and operation in SageMaker.OPERATIONS:
            return self.sagemaker, operation
        return None, None


def create_app(moto_url: str, intercepts: Intercepts) -> Starlette:
    pool = httpcore.AsyncConnectionPool(max_connections=64)
    moto = httpx.URL(moto_url)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "pid": os.getpid(),
                "moto": moto_url,
                "intercepted": [f"SageMaker.{op}" for op in SageMaker.OPERATIONS]
                + [f"IAM.{op}" for op in iam.OPERATIONS],
            }
        )

    async def dispatch(request: Request) -> Response:
        if request.url.path == HEALTH_PATH:
            return await health(request)
        service, operation = intercepts.find(request.headers.get("x-amz-target", ""))
        body = await request.body()
        if service is not None:
            return await _answer(service, operation, request, body)
        if _signed_for(request, "iam") and iam.operation_of(body):
            return Response(iam.simulate(body), media_type="text/xml")
        return await _proxy(pool, moto, request, body)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await pool.aclose()

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return Starlette(
        routes=[Route("/{path:path}", dispatch, methods=methods)],
        lifespan=lifespan,
    )


def _signed_for(request: Request, service: str) -> bool:
    """Whether the SigV4 credential scope names ``service`` (query-protocol APIs like IAM carry
    no X-Amz-Target)."""
    return f"/{service}/aws4_request" in request.headers.get("authorization", "")


async def _answer(service, operation: str, request: Request, body: bytes) -> Response:
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id}
    try:
        try:
            document = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            raise AwsError("SerializationException", f"request body is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise AwsError("SerializationException", "request body must be a JSON object")
        region = region_of(request.headers.get("authorization"))
        result = await run_in_threadpool(service.handle, operation, region, document)
        log.info("%s %s", operation, region)
        return Response(json.dumps(to_wire(result)), media_type=AMZ_JSON, headers=headers)
    except AwsError as exc:
        log.info("%s -> %s: %s", operation, exc.code, exc.message)
        return Response(
            json.dumps(exc.body()),
            status_code=exc.status,
            media_type=AMZ_JSON,
            headers={**headers, "x-amzn-ErrorType": exc.code},
        )
    except Exception as exc:  # a bug here must not look like a dropped connection
        log.exception("%s failed", operation)
        error = AwsError("InternalFailure", f"{type(exc).__name__}: {exc}", status=500)
        return Response(
            json.dumps(error.body()),
            status_code=500,
            media_type=AMZ_JSON,
            headers={**headers, "x-amzn-ErrorType": error.code},
        )


async def _proxy(
    pool: httpcore.AsyncConnectionPool, moto: httpx.URL, request: Request, body: bytes
) -> Response:
    """Pass the request to moto byte for byte. httpcore rather than httpx: httpx normalises
    dot segments in paths, which would turn the S3 key ``a/../b`` into ``b``."""
    target = request.scope.get("raw_path") or request.url.path.encode()
    if request.scope.get("query_string"):
        target += b"?" + request.scope["query_string"]
    headers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in request.headers.items()
        if k.lower() not in _DROP_REQUEST
    ]
    # moto routes some services by Host; keep the one the client signed.
    headers.append((b"host", request.headers.get("host", "").encode("latin-1")))
    headers.append((b"content-length", str(len(body)).encode()))
    upstream = await pool.request(
        request.method.encode(),
        httpcore.URL(scheme=b"http", host=moto.host.encode(), port=moto.port, target=target),
        headers=headers,
        content=body,
        extensions={"timeout": {"connect": 10.0, "read": 300.0, "write": 300.0, "pool": 300.0}},
    )
    content = upstream.content
    out_headers = [
        (k, v) for k, v in upstream.headers if k.decode("latin-1").lower() not in _DROP_RESPONSE
    ]
    response = Response(content, status_code=upstream.status)
    length = str(len(content)).encode()
    if request.method == "HEAD":
        length = dict((k.lower(), v) for k, v in upstream.headers).get(b"content-length", length)
    response.raw_headers = [*out_headers, (b"content-length", length)]
    return response


class LocalCloud:
    """moto + the intercepting front door + the job runners, started and stopped together."""

    def __init__(self, home: Path, host: str = "127.0.0.1", port: int = 0, persist: bool = True):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the local cloud binds loopback addresses only")
        self.home = home
        self.host = host
        self.port = port
        self.persist = persist
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.sagemaker: SageMaker | None = None
        self.url = ""

    def _prepare(self):
        self.home.mkdir(parents=True, exist_ok=True)
        self.moto.start()
        moto_host, moto_port = self.moto.get_host_and_port()
        moto_url = f"http://{moto_host}:{moto_port}"
        self._moto_url = moto_url
        if self.persist:
            restored = persist.restore(moto_url, self.home / "s3")
            if restored:
                log.info("restored %d S3 objects from %s", restored, self.home / "s3")
        runner = TrainingRunner(moto_url, self.home / "jobs")
        self.sagemaker = SageMaker(runner)
        app = create_app(moto_url, Intercepts(self.sagemaker))
        sock = bind(self.host, self.port)
        bound_host, bound_port = sock.getsockname()[:2]
        self.port = bound_port
        self.url = f"http://{bound_host}:{bound_port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        return sock

    def start(self) -> LocalCloud:
        """Serve in a background thread (tests, embedding); returns once it accepts requests."""
        sock = self._prepare()
        self._server.config.install_signal_handlers = False  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[sock])),
            daemon=True,
            name="localcloud",
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the local cloud failed to start")
            threading.Event().wait(0.02)
        return self

    def serve_forever(self, on_ready=None) -> None:
        """Serve in this thread until SIGINT/SIGTERM, then stop the jobs and moto."""
        sock = self._prepare()
        if on_ready:
            on_ready(self)
        try:
            self._server.run(sockets=[sock])
        finally:
            self._teardown()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._teardown()

    def _teardown(self) -> None:
        if self.sagemaker is not None:
            self.sagemaker.shutdown()
            self.sagemaker = None
            if self.persist:
                try:
                    written = persist.snapshot(self._moto_url, self.home / "s3")
                    log.info("saved S3 to %s (%d objects written)", self.home / "s3", written)
                except Exception:  # never lose the shutdown over it; say so loudly
                    log.exception("could not save S3 to %s", self.home / "s3")
            self.moto.stop()

    def environment(self) -> dict[str, str]:
        return control.client_environment(self.url)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)


def serve_foreground(port: int = 0, on_ready=None) -> None:
    """`ops local up` without --detach: serve in this process until Ctrl-C; the state file
    names this process while it serves."""
    cloud = LocalCloud(control.home(), port=port)

    def ready(cloud: LocalCloud) -> None:
        control.register(cloud.url, os.getpid())
        if on_ready:
            on_ready(cloud)

    try:
        cloud.serve_forever(on_ready=ready)
    finally:
        control.unregister(os.getpid())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="work and state folder")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, help="write {url, pid} here once serving")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it; with the default handler
    # that would end the process before S3 is saved and jobs are stopped.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    cloud = LocalCloud(args.home, port=args.port)

    def ready(cloud: LocalCloud) -> None:
        print(f"listening on {cloud.url}", flush=True)
        if args.ready_file:
            document = {"url": cloud.url, "pid": os.getpid(), "home": str(args.home)}
            write_atomic(args.ready_file, document)

    cloud.serve_forever(on_ready=ready)


if __name__ == "__main__":
    main()
