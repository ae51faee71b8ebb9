"""Who answers what: one table of the operations the local cloud answers itself.

A route names the API and operation, the service in the request's SigV4 scope (also the
botocore service whose model checks its requests, unless the route names another: see
`ops.localcloud.shapes`), the handler, and how a request is recognised, per protocol:

- JSON 1.1 (SageMaker, Application Auto Scaling, SSM): the ``X-Amz-Target`` header;
- REST (Lambda, SageMaker Runtime): the method and a path template (``/functions/{name}``);
- query (IAM, STS): the ``Action`` parameter.

A handler is a plain function (run on the front door's thread pool) or a coroutine function
(awaited on its event loop: for handlers that mostly wait on another server, so that they hold
no thread meanwhile). Whatever no route matches goes to moto. A service adds itself by
returning its routes from ``Service.routes()`` (see `ops.localcloud.service`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import botocore.session

from ops.localcloud.wire import (
    AwsError,
    Call,
    Json11,
    Query,
    RestJson,
    RestPayload,
    form_of,
    signing_scope,
)

Handler = Callable[[Call], object]
JSON11 = Json11()
REST_JSON = RestJson()


@dataclass(frozen=True)
class Route:
    api: str  # as users name it: "SageMaker", "IAM"
    operation: str  # "CreateTrainingJob"
    service: str  # the SigV4 signing name: "sagemaker", "iam"
    handler: Handler
    codec: Json11 | Query
    target: str | None = None  # JSON 1.1
    method: str | None = None  # REST
    path: str | None = None  # REST, with {name} segments
    # botocore's name for the API where it is not the signing name (SageMaker Runtime's
    # operations are signed for "sagemaker" but modelled as "sagemaker-runtime").
    model: str | None = None
    # REST: a query parameter the request must carry (Lambda's ListProvisionedConcurrencyConfigs
    # is GetProvisionedConcurrencyConfig's method and path with ``?List=ALL``).
    query: tuple[str, str] | None = None
    _path_regex: re.Pattern | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.api}.{self.operation}"

    @property
    def model_service(self) -> str:
        """The service whose botocore model describes this operation's requests."""
        return self.model or self.service


def json_routes(
    api: str, service: str, prefix: str, handlers: dict[str, Handler], model: str | None = None
) -> list[Route]:
    """JSON 1.1 routes: ``X-Amz-Target: <prefix>.<operation>``."""
    return [
        Route(api, op, service, handler, JSON11, target=f"{prefix}.{op}", model=model)
        for op, handler in handlers.items()
    ]


def query_routes(
    api: str, service: str, namespace: str, handlers: dict[str, Handler], model: str | None = None
) -> list[Route]:
    """Query-protocol routes: ``Action=<operation>`` signed for ``service``."""
    codec = Query(namespace)
    return [
        Route(api, op, service, handler, codec, model=model) for op, handler in handlers.items()
    ]


def rest_route(
    api: str,
    operation: str,
    service: str,
    method: str,
    path: str,
    handler: Handler,
    model: str | None = None,
    codec: RestJson = REST_JSON,
) -> Route:
    """A REST route: ``method`` on ``path`` (``{name}`` matches one path segment). ``codec``:
    REST-JSON unless the operation's body is a raw payload (`wire.RestPayload`)."""
    pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return Route(
        api,
        operation,
        service,
        handler,
        codec,
        method=method,
        path=path,
        model=model,
        _path_regex=re.compile(pattern),
    )


def model_routes(
    api: str, service: str, handlers: dict[str, Handler], model: str | None = None
) -> list[Route]:
    """REST-JSON routes made from botocore's model of ``model`` (default: ``service``): each
    operation's method, path (and query discriminator) and success status as AWS serves them.
    Routes with a query discriminator come first, so they win over the same path without it."""
    service_model = botocore.session.get_session().get_service_model(model or service)
    routes = []
    for operation, handler in handlers.items():
        operation_model = service_model.operation_model(operation)
        path, _, query = operation_model.http["requestUri"].partition("?")
        route = rest_route(
            api,
            operation,
            service,
            operation_model.http["method"],
            path,
            handler,
            model=model,
            codec=_rest_codec(operation_model),
        )
        if query:
            key, _, value = query.partition("=")
            route = dataclasses.replace(route, query=(key, value))
        routes.append(route)
    return sorted(routes, key=lambda route: route.query is None)


def api_method(errors: Callable[[Exception], AwsError | None]):
    """A decorator for a service's API methods: ``method(self, region, params)`` becomes the
    handler ``(self, call)`` a route takes, and a domain error that ``errors`` translates is
    answered as that AWS error (any other propagates: an internal failure)."""

    def decorate(method):
        @functools.wraps(method)
        def handler(self, call: Call):
            try:
                return method(self, call.region, call.params)
            except Exception as exc:
                error = errors(exc)
                if error is None:
                    raise
                raise error from exc

        return handler

    return decorate


class RouteTable:
    def __init__(self, routes: Iterable[Route]):
        self.routes = list(routes)
        self._by_target: dict[str, Route] = {}
        self._by_action: dict[tuple[str, str], Route] = {}
        self._rest: list[Route] = []
        for route in self.routes:
            if route.target:
                key, table = route.target, self._by_target
            elif route.method:
                self._rest.append(route)
                continue
            else:
                key, table = (route.service, route.operation), self._by_action
            if key in table:
                raise ValueError(f"two routes for {key}")
            table[key] = route
        self._query_services = {service for service, _ in self._by_action}

    def names(self) -> list[str]:
        return [route.name for route in self.routes]

    def find(
        self, method: str, path: str, headers, body: bytes, query_string: bytes = b""
    ) -> tuple[Route, dict[str, str]] | None:
        """The route for a request and its path parameters, or None (moto answers it)."""
        target = headers.get("x-amz-target")
        if target:
            route = self._by_target.get(target)
            return (route, {}) if route else None
        _, service = signing_scope(headers.get("authorization"))
        for route in self._rest:
            if route.service == service and route.method == method:
                match = route._path_regex.fullmatch(path)
                if match and (route.query is None or _has(query_string, route.query)):
                    return route, match.groupdict()
        if service in self._query_services:
            action = form_of(body, query_string).get("Action", "")
            route = self._by_action.get((service, action))
            return (route, {}) if route else None
        return None


def _has(query_string: bytes, pair: tuple[str, str]) -> bool:
    key, value = pair
    return form_of(b"", query_string).get(key) == value


def _rest_codec(operation_model) -> RestJson:
    """REST-JSON, or raw-payload REST for an operation whose body is a blob (Lambda's Invoke)."""
    shape = operation_model.input_shape
    if shape is not None and shape.serialization.get("payload"):
        return RestPayload(operation_model)
    return RestJson(operation_model)
