"""A model server that speaks the SageMaker inference container contract, for local use.

    python -m ops.model_server MODEL --port 8080

``MODEL`` is a model directory or a ``model.tar.gz`` as training writes them. Like the SageMaker
PyTorch container, the server imports the artifact's own ``code/inference.py`` (with ``code/`` on
the import path) and calls its ``model_fn`` once at start-up; then

- ``GET /ping`` answers 200 once the model is loaded;
- ``POST /invocations`` runs ``input_fn`` -> ``predict_fn`` -> ``output_fn`` with the request's
  ``Content-Type`` and ``Accept``.

Errors the handler marks with a 4xx ``status_code`` become that status with ``{"error": ...}``.
Anything else, anywhere, is a 500 ``{"error": "internal error", "request_id": ...}``: the
exception is logged with that request id and its text never reaches the caller. Unknown paths
and methods get JSON 404/405. Bodies over the handler's limit are refused with 413 before they
are read in full. The server keeps serving after any of these.

Built on Starlette and uvicorn (the well-kept ASGI stack under FastAPI): handler calls are
blocking, so they run in Starlette's thread pool and never stall the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import socket
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ml.url_fetch import declared_length
from ops.artifacts import ArtifactError, extract_artifact

log = logging.getLogger("ops.model_server")
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024


def load_handler(model_dir: Path) -> ModuleType:
    """Import ``model_dir/code/inference.py`` as the container does."""
    entry = model_dir / "code" / "inference.py"
    if not entry.is_file():
        raise ArtifactError(f"{model_dir} has no code/inference.py; is it a training artifact?")
    sys.path.insert(0, str(entry.parent))
    spec = importlib.util.spec_from_file_location("inference", entry)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    for name in ("model_fn", "input_fn", "predict_fn", "output_fn"):
        if not hasattr(module, name):
            raise ArtifactError(f"{entry} does not define {name}")
    return module


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _internal_error(request: Request, exc: BaseException) -> JSONResponse:
    request_id = uuid.uuid4().hex
    log.error(
        "request %s %s %s failed",
        request_id,
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return JSONResponse(
        {"error": "internal error", "request_id": request_id},
        status_code=500,
        headers={"X-Request-Id": request_id},
    )


async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    messages = {404: "no such path", 405: "method not allowed"}
    message = messages.get(exc.status_code, str(exc.detail))
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is (or declares to be) larger than ``limit``."""
    declared = declared_length(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        return None
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model_dir: Path) -> Starlette:
    """Load the model once and return the ASGI app serving it."""
    handler = load_handler(model_dir)
    model = handler.model_fn(str(model_dir))
    limit = (
        handler.max_body_bytes() if hasattr(handler, "max_body_bytes") else DEFAULT_MAX_BODY_BYTES
    )

    # The model runs on one long-lived thread: torch's intra-op thread team belongs to the
    # calling thread, and hopping across the request thread pool cost ~10 ms per call.
    model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    def predict(data: object, accept: str) -> str | bytes:
        return handler.output_fn(handler.predict_fn(data, model), accept)

    async def ping(_: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def invocations(request: Request) -> Response:
        try:
            body = await _read_body(request, limit)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening for the answer
        if body is None:
            return _error(413, f"the body exceeds the limit of {limit} bytes")
        content_type = request.headers.get("content-type", "")
        accept = request.headers.get("accept", "application/json")
        try:
            # Decoding and URL fetches run in the request pool, concurrently with the model.
            data = await run_in_threadpool(handler.input_fn, body, content_type)
            payload = await asyncio.wrap_future(model_thread.submit(predict, data, accept))
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and 400 <= status < 500:
                return _error(status, str(exc))
            return _internal_error(request, exc)
        return Response(payload, media_type="application/json")

    app = Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.router.redirect_slashes = False  # the container answers exactly two paths; no 307s
    return app


def resolve_model_dir(model: Path, workdir: Path | None = None) -> Path:
    """A directory to serve from: ``model`` itself, or ``model.tar.gz`` unpacked."""
    if model.is_dir():
        return model
    if model.is_file():
        target = workdir or Path(tempfile.mkdtemp(prefix="model-"))
        return extract_artifact(model, target)
    raise ArtifactError(f"{model} does not exist")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back from ``getsockname()``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this on Linux. Without it, a keep-alive client waits for
    # a delayed ACK (~40 ms) between the response's header and body writes.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def serve(model: Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Load the model, bind, print ``listening on http://HOST:PORT`` and serve until stopped."""
    with tempfile.TemporaryDirectory(prefix="model-") as workdir:  # an unpacked model.tar.gz
        app = create_app(resolve_model_dir(model, Path(workdir)))
        sock = bind(host, port)
        bound_host, bound_port = sock.getsockname()[:2]
        print(f"listening on http://{bound_host}:{bound_port}", flush=True)
        level = os.environ.get("MODEL_SERVER_LOG_LEVEL", "warning")
        uvicorn.Server(uvicorn.Config(app, log_level=level)).run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="model directory or model.tar.gz")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        serve(args.model, args.host, args.port)
    except ArtifactError as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
