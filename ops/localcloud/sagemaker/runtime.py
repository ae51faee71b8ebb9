"""SageMaker Runtime's InvokeEndpoint, and the endpoints' CloudWatch metrics.

``POST /endpoints/<name>/invocations`` (REST; signed for ``sagemaker``, modelled as
``sagemaker-runtime``): the body is the model's input as is (`wire.RestPayload`). A request
goes to a production variant drawn by weight (or the one ``X-Amzn-SageMaker-Target-Variant``
names), then to the variant's least busy instance in service (fewest requests in flight; ties
drawn at random), with ``Content-Type``, ``Accept`` and ``X-Amzn-SageMaker-Custom-Attributes``
passed through, over a pooled keep-alive connection. The answer is the model's body and content
type, its custom attributes, and ``x-Amzn-Invoked-Production-Variant``. If an instance refuses
the connection (it has just died; the hosting watcher replaces it), the request goes to another.

Errors, as AWS answers them (AWS-SEMANTICS.md B5):

- the model answers non-2xx: ``ModelError`` (HTTP 424) with ``OriginalStatusCode``,
  ``OriginalMessage`` (the model's body) and ``LogStreamArn`` (the endpoint's log group), and
  the message ``Received client error (400) from primary with message "...". See ... for more
  information.`` (``server error`` for 5xx); no answer within 60 s: ``ModelError`` with status 0;
- an unknown endpoint, or one not serving (Creating, Failed, Deleting):
  ``ValidationError`` ``Endpoint <name> of account <account> not found.``;
- a body over 6,291,456 bytes (the service model's limit): ``ValidationError``;
- a serving endpoint with no instance in service (a lone instance being replaced):
  ``ServiceUnavailable`` (503), which the SDKs retry.

Metrics (`EndpointMetrics`): namespace ``AWS/SageMaker``, dimensions EndpointName and
VariantName, as SM:monitoring-cloudwatch defines them: ``Invocations``,
``InvocationsPerInstance`` (each request adds 1 / the instances in service), ``ModelLatency``
and ``OverheadLatency`` (microseconds), ``Invocation4XXErrors`` and ``Invocation5XXErrors``
(per request 1 or 0, by the model's status). They are summed per second and put into CloudWatch
(moto) once a second with those seconds' timestamps, so GetMetricStatistics and GetMetricData
return them; a variant of an InService endpoint that had no request in a minute gets 0
Invocations and InvocationsPerInstance for it, as AWS emits 0 rather than nothing
(SM:endpoint-auto-scaling-prerequisites). The same per-second counts stay in memory for three
hours for the autoscaling controller (`EndpointMetrics.window`).
"""

from __future__ import annotations

import collections
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from ops.localcloud.cwmetrics import Publisher, by_region
from ops.localcloud.routes import Route, model_routes
from ops.localcloud.sagemaker.endpoint_records import SERVING, EndpointBackend, Fleet, Instance
from ops.localcloud.sagemaker.hosting import INVOCATION_TIMEOUT_S, LOG_GROUP_PREFIX
from ops.localcloud.wire import ACCOUNT_ID, AwsError, Call

log = logging.getLogger("dogops.localcloud")
MAX_BODY_BYTES = 6_291_456  # InvokeEndpoint's Body, the sagemaker-runtime service model
NAMESPACE = "AWS/SageMaker"
HISTORY_S = 3 * 3600
_PASSED_HEADERS = {
    "ContentType": "Content-Type",
    "Accept": "Accept",
    "CustomAttributes": "X-Amzn-SageMaker-Custom-Attributes",
}


def not_found(name: str) -> AwsError:
    # aws/amazon-sagemaker-examples#293 and #559 (AWS-SEMANTICS.md B5).
    return AwsError("ValidationError", f"Endpoint {name} of account {ACCOUNT_ID} not found.")


class Runtime:
    """InvokeEndpoint over the endpoints that `hosting` runs."""

    def __init__(self, backend: EndpointBackend, metrics: EndpointMetrics):
        self.backend = backend
        self.metrics = metrics
        self._http: httpx.AsyncClient | None = None  # made on the front door's event loop
        self._random = random.Random()

    def routes(self) -> list[Route]:
        return model_routes(
            "SageMaker Runtime", "sagemaker", {"InvokeEndpoint": self.invoke}, "sagemaker-runtime"
        )

    def _client(self) -> httpx.AsyncClient:
        """The pool of keep-alive connections to the instances, bound to the event loop of the
        first request (the front door has one)."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(INVOCATION_TIMEOUT_S, connect=2.0),
                limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
            )
        return self._http

    async def invoke(self, call: Call) -> dict:
        """Awaited on the front door's event loop (see `gateway`): a request waiting for its
        model holds no thread."""
        started = time.perf_counter()
        region, params = call.region, call.params
        name = params["EndpointName"]
        body = params.get("Body") or b""
        if len(body) > MAX_BODY_BYTES:
            raise AwsError(
                "ValidationError",
                "1 validation error detected: Value at 'body' failed to satisfy constraint: "
                f"Member must have length less than or equal to {MAX_BODY_BYTES}",
            )
        headers = {
            header: params[member] for member, header in _PASSED_HEADERS.items() if member in params
        }
        refused: set[str] = set()
        while True:
            fleet, instance, instances = self._acquire(region, name, params, refused)
            sent = time.perf_counter()
            try:
                response = await self._client().post(
                    f"{instance.url}/invocations", content=body, headers=headers
                )
            except httpx.ConnectError:
                refused.add(instance.id)  # died since it was picked: try another
                continue
            except httpx.TimeoutException:
                status, message = (
                    0,
                    (
                        "Your invocation timed out while waiting for a response from container "
                        "primary. Review the latency metrics for each container in Amazon "
                        "CloudWatch, resolve the issue, and try again."
                    ),
                )
            except httpx.HTTPError as exc:
                status, message = 0, f"The connection to the container failed: {exc}"
            else:
                status, message = response.status_code, None
            finally:
                self._release(instance)
            model_us = (time.perf_counter() - sent) * 1e6
            total_us = (time.perf_counter() - started) * 1e6
            self.metrics.record(
                region, name, fleet.name, instances, model_us, max(0.0, total_us - model_us), status
            )
            if message is None and 200 <= status < 300:
                return {
                    "Body": response.content,
                    "ContentType": response.headers.get("content-type"),
                    "InvokedProductionVariant": fleet.name,
                    "CustomAttributes": response.headers.get(_PASSED_HEADERS["CustomAttributes"]),
                }
            if message is None:
                message = response.content.decode("utf-8", errors="replace")
            raise _model_error(region, name, status, message)

    def _acquire(
        self, region: str, name: str, params: dict, refused: set[str]
    ) -> tuple[Fleet, Instance, int]:
        """The variant and instance to send a request to (its in-flight count taken), and how
        many instances of the variant are in service."""
        target = params.get("TargetVariant")
        with self.backend.lock:
            endpoint = self.backend.endpoints.get((region, name))
            if endpoint is None or endpoint.status not in SERVING:
                raise not_found(name)
            fleets = list(endpoint.fleets.values())
            if target is not None:
                fleets = [fleet for fleet in fleets if fleet.name == target]
                if not fleets:
                    raise AwsError(
                        "ValidationError",
                        f"Invalid target variant {target} for endpoint {name} of account "
                        f"{ACCOUNT_ID}.",
                    )
            ready = []
            for fleet in fleets:
                instances = [i for i in fleet.in_service() if i.id not in refused]
                if instances and (target is not None or fleet.spec["DesiredWeight"] > 0):
                    ready.append((fleet, instances))
            if not ready:
                raise AwsError(
                    "ServiceUnavailable",
                    f"Endpoint {name} has no instance in service right now; try again.",
                    status=503,
                )
            weights = [fleet.spec["DesiredWeight"] or 1.0 for fleet, _ in ready]
            fleet, instances = self._random.choices(ready, weights)[0]
            least = min(instance.in_flight for instance in instances)
            instance = self._random.choice([i for i in instances if i.in_flight == least])
            instance.in_flight += 1
            return fleet, instance, len(fleet.in_service())

    def _release(self, instance: Instance) -> None:
        with self.backend.lock:
            instance.in_flight -= 1


def _model_error(region: str, name: str, status: int, original: str) -> AwsError:
    """SageMaker's answer when the model answered non-2xx (or not at all: status 0)."""
    kind = "client" if 400 <= status < 500 else "server"
    group = LOG_GROUP_PREFIX + name
    console = (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logEventViewer:group={group}"
    )
    return AwsError(
        "ModelError",
        f'Received {kind} error ({status}) from primary with message "{original}". See '
        f"{console} in account {ACCOUNT_ID} for more information.",
        status=424,
        members={
            "OriginalStatusCode": status,
            "OriginalMessage": original,
            "LogStreamArn": f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{group}",
        },
    )


@dataclass
class _Second:
    """One variant's requests in one second."""

    invocations: int = 0
    per_instance: float = 0.0
    errors_4xx: int = 0
    errors_5xx: int = 0
    model_us: list[float] = field(default_factory=list)
    overhead_us: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    """A variant's traffic over a span of time."""

    invocations: int
    invocations_per_instance: float


class EndpointMetrics(Publisher):
    """Per-second sums per variant, put into CloudWatch once a second; `window` reads them."""

    def __init__(self, moto, backend: EndpointBackend, clock=time.time):
        super().__init__(moto, NAMESPACE, "endpoint-metrics", clock)
        self.backend = backend
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str, str, int], _Second] = {}
        # (region, endpoint, variant) -> {second: (invocations, per instance)}
        self._history: dict[tuple[str, str, str], dict[int, tuple[int, float]]] = (
            collections.defaultdict(dict)
        )
        self._zeroed: set[tuple[str, str, str, int]] = set()
        self.start()

    def record(
        self,
        region: str,
        endpoint: str,
        variant: str,
        instances: int,
        model_us: float,
        overhead_us: float,
        status: int,
    ) -> None:
        second = int(self.clock())
        with self._lock:
            bucket = self._open.setdefault((region, endpoint, variant, second), _Second())
            bucket.invocations += 1
            bucket.per_instance += 1.0 / max(1, instances)
            bucket.errors_4xx += 400 <= status < 500
            bucket.errors_5xx += not 100 <= status < 500
            bucket.model_us.append(model_us)
            bucket.overhead_us.append(overhead_us)

    def window(self, region: str, endpoint: str, variant: str, start: float, end: float) -> Window:
        """The variant's invocations (and their InvocationsPerInstance sum) in the seconds
        from ``start`` up to ``end`` (epoch seconds; what `record` has seen, published or
        not). The autoscaling controller reads its metric periods here."""
        key = (region, endpoint, variant)
        first, last = math.ceil(start), math.ceil(end)  # the seconds s with start <= s < end
        with self._lock:
            history = self._history.get(key, {})
            if last - first < len(history):  # a short window (the controller's): look it up
                seen = [history[s] for s in range(first, last) if s in history]
            else:
                seen = [value for s, value in history.items() if start <= s < end]
            seen += [
                (bucket.invocations, bucket.per_instance)
                for (r, e, v, second), bucket in self._open.items()
                if (r, e, v) == key and start <= second < end
            ]
        invocations = sum(count for count, _ in seen)
        per_instance = sum(share for _, share in seen)
        return Window(invocations, per_instance)

    def collect(self, everything: bool) -> dict[str, list[dict]]:
        now = self.clock()
        current = int(now)
        with self._lock:
            done = [key for key in self._open if everything or key[3] < current]
            buckets = {key: self._open.pop(key) for key in done}
            for (region, endpoint, variant, second), bucket in buckets.items():
                history = self._history[(region, endpoint, variant)]
                history[second] = (bucket.invocations, bucket.per_instance)
            for history in self._history.values():
                for second in [s for s in history if s < now - HISTORY_S]:
                    del history[second]
        due = by_region()
        for (region, endpoint, variant, second), bucket in sorted(buckets.items()):
            due[region] += _datums(endpoint, variant, second, bucket)
        for region, endpoint, variant, minute in self._idle_minutes(now):
            due[region] += _zero_datums(endpoint, variant, minute)
        return due

    def _idle_minutes(self, now: float) -> list[tuple[str, str, str, int]]:
        """The last whole minute, for each variant of an InService endpoint that had no
        request in it and has not been given its 0 yet."""
        minute = int(now // 60) * 60 - 60
        with self.backend.lock:
            variants = [
                (endpoint.region, endpoint.name, fleet.name)
                for endpoint in self.backend.endpoints.values()
                if endpoint.status == "InService" and endpoint.created.timestamp() <= minute
                for fleet in endpoint.fleets.values()
            ]
        idle = []
        with self._lock:
            for key in variants:
                history = self._history.get(key, {})
                if (*key, minute) in self._zeroed:
                    continue
                if not any(minute <= second < minute + 60 for second in history):
                    idle.append((*key, minute))
                self._zeroed.add((*key, minute))
            self._zeroed = {entry for entry in self._zeroed if entry[3] >= minute - 120}
        return idle


def _dimensions(endpoint: str, variant: str) -> list[dict]:
    return [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]


def _datums(endpoint: str, variant: str, second: int, bucket: _Second) -> list[dict]:
    stamp = datetime.fromtimestamp(second, UTC)
    dims = _dimensions(endpoint, variant)

    def value(name: str, number: float) -> dict:
        return {
            "MetricName": name,
            "Dimensions": dims,
            "Timestamp": stamp,
            "Value": number,
            "Unit": "None",
        }

    def stats(name: str, values: list[float], unit: str) -> dict:
        return {
            "MetricName": name,
            "Dimensions": dims,
            "Timestamp": stamp,
            "StatisticValues": {
                "SampleCount": float(len(values)),
                "Sum": float(sum(values)),
                "Minimum": float(min(values)),
                "Maximum": float(max(values)),
            },
            "Unit": unit,
        }

    count = bucket.invocations
    return [
        value("Invocations", count),
        value("InvocationsPerInstance", bucket.per_instance),
        stats(
            "Invocation4XXErrors",
            [1.0] * bucket.errors_4xx + [0.0] * (count - bucket.errors_4xx),
            "None",
        ),
        stats(
            "Invocation5XXErrors",
            [1.0] * bucket.errors_5xx + [0.0] * (count - bucket.errors_5xx),
            "None",
        ),
        stats("ModelLatency", bucket.model_us, "Microseconds"),
        stats("OverheadLatency", bucket.overhead_us, "Microseconds"),
    ]


def _zero_datums(endpoint: str, variant: str, minute: int) -> list[dict]:
    stamp = datetime.fromtimestamp(minute, UTC)
    dims = _dimensions(endpoint, variant)
    return [
        {"MetricName": name, "Dimensions": dims, "Timestamp": stamp, "Value": 0.0, "Unit": "None"}
        for name in ("Invocations", "InvocationsPerInstance")
    ]
