"""The front door: one ASGI app on 127.0.0.1. A request the route table knows is checked against
botocore's service model (`shapes`) and answered by its handler; anything else is passed, byte
for byte, to moto. ``GET /_localcloud/health`` says who is running and lists what is
intercepted."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os

import httpcore
import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from ops.localcloud import shapes
from ops.localcloud.control import HEALTH_PATH
from ops.localcloud.routes import Route, RouteTable
from ops.localcloud.wire import AwsError, Call, request_id, signing_scope

log = logging.getLogger("dogops.localcloud")
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


def create_app(table: RouteTable, moto_url: str, time_scale: float = 1.0) -> Starlette:
    pool = httpcore.AsyncConnectionPool(max_connections=64)
    moto = httpx.URL(moto_url)

    async def dispatch(request: Request) -> Response:
        if request.url.path == HEALTH_PATH:
            document = {
                "status": "ok",
                "pid": os.getpid(),
                "moto": moto_url,
                "time_scale": time_scale,
            }
            return JSONResponse({**document, "intercepted": table.names()})
        body = await request.body()
        query = request.scope.get("query_string", b"")
        found = table.find(request.method, request.url.path, request.headers, body, query)
        if found is None:
            return await _proxy(pool, moto, request, body)
        route, path_params = found
        return await _answer(route, path_params, request, body, query)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await pool.aclose()

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return Starlette(
        routes=[StarletteRoute("/{path:path}", dispatch, methods=methods)],
        lifespan=lifespan,
    )


async def _answer(
    route: Route, path_params: dict, request: Request, body: bytes, query: bytes
) -> Response:
    rid = request_id()
    try:
        params = {**route.codec.decode(body, query, request.headers), **path_params}
        region, _ = signing_scope(request.headers.get("authorization"))
        call = Call(region, params)
        if inspect.iscoroutinefunction(route.handler):
            # A handler that mostly waits on another server (InvokeEndpoint forwarding to a
            # model server) runs on the event loop: it holds no thread of the pool while it
            # waits, so slow models cannot starve the other operations of threads.
            shapes.check(route.model_service, route.operation, params)
            result = await route.handler(call)
        else:
            result = await run_in_threadpool(_handle, route, call)
        log.info("%s %s", route.name, region)
        return route.codec.encode(route.operation, result, rid)
    except AwsError as exc:
        log.info("%s -> %s: %s", route.name, exc.code, exc.message)
        return route.codec.error(exc, rid)
    except Exception as exc:  # a bug here must not look like a dropped connection
        log.exception("%s failed", route.name)
        error = AwsError("InternalFailure", f"{type(exc).__name__}: {exc}", status=500)
        return route.codec.error(error, rid)


def _handle(route: Route, call: Call) -> object:
    """The request checked against the operation's input shape in botocore's model, as AWS
    checks it before the service sees it; then the handler's answer."""
    shapes.check(route.model_service, route.operation, call.params)
    return route.handler(call)


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
