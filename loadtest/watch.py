"""What happened during the run, recorded row by row into a `Timeline`.

`Recorder` listens to Locust's ``request`` event (the client's invokes) and counts each row's
outcomes, latencies and concurrency. `ScalingWatch` runs beside the users (a greenlet, as
Locust's own are) and, at the end of every row, reads the endpoint variant's
``CurrentInstanceCount``/``DesiredInstanceCount`` (DescribeEndpoint) and its scaling activities
(DescribeScalingActivities); when the test stops it reads CloudWatch once (GetMetricData) for
the endpoint's ``AWS/SageMaker`` ``Invocations`` and the function's ``AWS/Lambda``
``Invocations``, ``Throttles``, ``Errors`` and ``ConcurrentExecutions``, and files each
datapoint under the row its timestamp falls in. The same API calls on AWS and on the local
cloud; boto3 finds the local cloud from its own endpoint settings.

Rows end on multiples of the interval on the wall clock (as CloudWatch periods do). The interval
is whole seconds (options.row_interval: one policy minute, 60 s / time scale, rounded; on AWS a
multiple of 60) and is the period the metrics are read in, from the start of the period the test
began in, so each metric period is exactly one row.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime

import gevent
from botocore.exceptions import BotoCoreError, ClientError

from loadtest.outcomes import FunctionError, HandlerError, Throttled
from loadtest.timeline import Row, ScalingActivity, Timeline, Totals

log = logging.getLogger("loadtest")
_DESIRED = re.compile(r"to (\d+)\.?$")


def percentile(counts: Counter, fraction: float) -> float | None:
    """The smallest value with at least `fraction` of the samples at or below it."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = math.ceil(fraction * total)
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return float(value)
    return None  # unreachable: rank <= total


@dataclass
class _Bucket:
    requests: int = 0
    successes: int = 0
    throttles: int = 0
    function_errors: int = 0
    handler_errors: int = 0
    other_errors: int = 0
    latencies: Counter = field(default_factory=Counter)  # successful invocations, whole ms
    in_flight_max: int = 0
    throttled_at_in_flight: int | None = None

    def outcomes(self) -> dict:
        """The counts by outcome and the p95 of the successes: what a row and the totals share."""
        return {
            "requests": self.requests,
            "successes": self.successes,
            "throttles": self.throttles,
            "function_errors": self.function_errors,
            "handler_errors": self.handler_errors,
            "other_errors": self.other_errors,
            "p95_ms": percentile(self.latencies, 0.95),
        }


class Recorder:
    """Counts the invokes (a listener of Locust's ``request`` event) into rows."""

    def __init__(self) -> None:
        self._bucket = _Bucket()
        self._all = _Bucket()

    def on_request(self, response_time: float, exception=None, context=None, **_) -> None:
        context = context or {}
        for bucket in (self._bucket, self._all):
            bucket.requests += 1
            bucket.in_flight_max = max(bucket.in_flight_max, context.get("in_flight_at_start", 0))
            if exception is None:
                bucket.successes += 1
                bucket.latencies[round(response_time)] += 1
            elif isinstance(exception, Throttled):
                bucket.throttles += 1
                others = context.get("others_in_flight")
                if others is not None:
                    fewest = bucket.throttled_at_in_flight
                    bucket.throttled_at_in_flight = (
                        others if fewest is None else min(fewest, others)
                    )
            elif isinstance(exception, FunctionError):
                bucket.function_errors += 1
            elif isinstance(exception, HandlerError):
                bucket.handler_errors += 1
            else:
                bucket.other_errors += 1

    def cut(self, t: float, interval: float, users: int, **counts) -> Row:
        """The row ending now (`t`), and a fresh one begun."""
        b, self._bucket = self._bucket, _Bucket()
        return Row(
            t=round(t, 3),
            interval=round(interval, 3),
            users=users,
            **b.outcomes(),
            in_flight_max=b.in_flight_max,
            throttled_at_in_flight=b.throttled_at_in_flight,
            **counts,
        )

    def totals(self) -> Totals:
        return Totals(**self._all.outcomes())


@dataclass(frozen=True)
class Watched:
    """What to watch, and how often."""

    function_name: str
    qualifier: str | None
    endpoint_name: str | None  # None: no endpoint to watch (only the function)
    variant_name: str
    interval: float  # wall seconds per row, whole: also the metrics' period (options.row_interval)
    time_scale: float

    @property
    def resource_id(self) -> str:
        return f"endpoint/{self.endpoint_name}/variant/{self.variant_name}"


# (Row field, namespace, metric, statistic, whose dimensions)
_METRICS = (
    ("endpoint_invocations", "AWS/SageMaker", "Invocations", "Sum", "endpoint"),
    ("lambda_invocations", "AWS/Lambda", "Invocations", "Sum", "function"),
    ("lambda_throttles", "AWS/Lambda", "Throttles", "Sum", "function"),
    ("lambda_errors", "AWS/Lambda", "Errors", "Sum", "function"),
    ("lambda_concurrent", "AWS/Lambda", "ConcurrentExecutions", "Maximum", "function"),
)


class ScalingWatch:
    """Polls the endpoint's scaling while the test runs; `stop` returns the `Timeline`."""

    def __init__(self, watched: Watched, recorder: Recorder, session, users=lambda: 0) -> None:
        self.watched = watched
        self.recorder = recorder
        self._users = users
        self._sagemaker = session.client("sagemaker")
        self._autoscaling = session.client("application-autoscaling")
        self._cloudwatch = session.client("cloudwatch")
        self._greenlet: gevent.Greenlet | None = None
        self._warned: set[str] = set()
        self._known_before: set[str] = set()
        self._activities: dict[str, ScalingActivity] = {}
        self._row_start = 0.0
        self.started_at = 0.0
        self.timeline: Timeline | None = None

    def start(self) -> ScalingWatch:
        """Remember the activities from before the test, then poll at every row's end."""
        self._known_before = {a["ActivityId"] for a in self._describe_activities()}
        self.started_at = self._row_start = time.time()
        name = self.watched.function_name
        qualifier = self.watched.qualifier
        self.timeline = Timeline(
            function=f"{name}:{qualifier}" if qualifier else name,
            endpoint=self.watched.resource_id if self.watched.endpoint_name else None,
            started_at=self.started_at,
            time_scale=self.watched.time_scale,
        )
        self._greenlet = gevent.spawn(self._run)
        return self

    def stop(self, metrics_wait: float = 0.0) -> Timeline:
        """End the last row, read CloudWatch (after `metrics_wait` s: AWS publishes a minute's
        datapoints a few minutes late), and return the timeline."""
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        assert self.timeline is not None, "stop() before start()"
        self._row(time.time())
        if metrics_wait > 0:
            gevent.sleep(metrics_wait)
        self._fill_metrics()
        self.timeline.activities = sorted(self._activities.values(), key=lambda a: a.start)
        self.timeline.totals = self.recorder.totals()
        return self.timeline

    def _run(self) -> None:
        interval = self.watched.interval
        while True:
            now = time.time()
            gevent.sleep(max(0.0, (math.floor(now / interval) + 1) * interval - now))
            self._row(time.time())

    def _row(self, now: float) -> None:
        assert self.timeline is not None
        desired = current = None
        if self.watched.endpoint_name:
            desired, current = self._instance_counts()
        t = now - self.started_at
        row = self.recorder.cut(
            t, now - self._row_start, self._users(), desired=desired, current=current
        )
        self._row_start = now
        self.timeline.rows.append(row)
        for activity in self._describe_activities():
            self._note_activity(activity, row.t)
        log.info(
            "t=%.0f s: %d users, %.1f requests/s, %d throttled, %d errors; instances desired %s, "
            "in service %s",
            row.t, row.users, row.requests_per_second, row.throttles, row.errors,
            "-" if desired is None else desired, "-" if current is None else current,
        )  # fmt: skip

    def _warn_once(self, what: str, exc: Exception) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("scaling watch: %s failed: %s (said once; tried again each row)", what, exc)

    def _instance_counts(self) -> tuple[int | None, int | None]:
        try:
            endpoint = self._sagemaker.describe_endpoint(EndpointName=self.watched.endpoint_name)
        except (ClientError, BotoCoreError) as exc:
            self._warn_once("DescribeEndpoint", exc)
            return None, None
        for variant in endpoint.get("ProductionVariants", []):
            if variant.get("VariantName") == self.watched.variant_name:
                return variant.get("DesiredInstanceCount"), variant.get("CurrentInstanceCount")
        return None, None

    def _describe_activities(self) -> list[dict]:
        if not self.watched.endpoint_name:
            return []
        try:
            pages = self._autoscaling.get_paginator("describe_scaling_activities").paginate(
                ServiceNamespace="sagemaker",
                ResourceId=self.watched.resource_id,
                ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            )
            return [a for page in pages for a in page.get("ScalingActivities", [])]
        except (ClientError, BotoCoreError) as exc:
            self._warn_once("DescribeScalingActivities", exc)
            return []

    def _note_activity(self, found: dict, t: float) -> None:
        activity_id = found["ActivityId"]
        if activity_id in self._known_before:
            return
        match = _DESIRED.search(found.get("Description", ""))
        seen = self._activities.get(activity_id)
        end = found.get("EndTime")
        self._activities[activity_id] = ScalingActivity(
            activity_id=activity_id,
            description=found.get("Description", ""),
            status=found.get("StatusCode", ""),
            desired=int(match.group(1)) if match else None,
            start=_seconds(found["StartTime"]),
            end=_seconds(end) if end is not None else None,
            seen_at=seen.seen_at if seen is not None else t,
            cause=found.get("Cause", ""),
        )

    def _fill_metrics(self) -> None:
        """Each CloudWatch datapoint into the row its timestamp falls in (Sum: added;
        Maximum: the larger)."""
        assert self.timeline is not None
        rows = self.timeline.rows
        if not rows:
            return
        period = max(1, round(self.watched.interval))  # the rows' own (options.row_interval)
        queries = []
        for index, (_, namespace, metric, statistic, whose) in enumerate(_METRICS):
            dimensions = self._dimensions(whose)
            if dimensions is None:
                continue
            queries.append(
                {
                    "Id": f"m{index}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": metric,
                            "Dimensions": dimensions,
                        },
                        "Period": period,
                        "Stat": statistic,
                    },
                    "ReturnData": True,
                }
            )
        start = metrics_start(self.started_at, period)
        end = self.started_at + rows[-1].t + period
        values: dict[str, list[tuple[float, float]]] = {q["Id"]: [] for q in queries}
        try:
            pages = self._cloudwatch.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries,
                StartTime=datetime.fromtimestamp(start).astimezone(),
                EndTime=datetime.fromtimestamp(end).astimezone(),
                ScanBy="TimestampAscending",
            )
            for page in pages:
                for result in page.get("MetricDataResults", []):
                    values[result["Id"]] += [
                        (_seconds(stamp) - self.started_at, value)
                        for stamp, value in zip(
                            result.get("Timestamps", []), result.get("Values", []), strict=False
                        )
                    ]
        except (ClientError, BotoCoreError) as exc:
            self._warn_once("GetMetricData", exc)
            return
        filled: dict[int, dict[str, float]] = {}
        for index, (attribute, _, _, statistic, _) in enumerate(_METRICS):
            for offset, value in values.get(f"m{index}", []):
                row = _row_index(rows, offset, period)
                if row is None:
                    continue
                cell = filled.setdefault(row, {})
                if attribute not in cell:
                    cell[attribute] = value
                elif statistic == "Maximum":
                    cell[attribute] = max(cell[attribute], value)
                else:
                    cell[attribute] += value
        for index, cell in filled.items():
            rows[index] = replace(rows[index], **cell)

    def _dimensions(self, whose: str) -> list[dict] | None:
        if whose == "function":
            return [{"Name": "FunctionName", "Value": self.watched.function_name}]
        if not self.watched.endpoint_name:
            return None
        return [
            {"Name": "EndpointName", "Value": self.watched.endpoint_name},
            {"Name": "VariantName", "Value": self.watched.variant_name},
        ]


def _seconds(stamp) -> float:
    return stamp.timestamp() if isinstance(stamp, datetime) else float(stamp)


def metrics_start(started_at: float, period: int) -> float:
    """GetMetricData's StartTime: the start of the period the test started in. Both moto and
    CloudWatch bucket datapoints in `period` steps from StartTime (moto after dropping its
    fraction of a second; CloudWatch rounds it down to the minute, or to the 5/10/20/30-s
    division of one for high-resolution periods), so a StartTime on a multiple of the period
    puts each bucket exactly on a row: rows end on multiples of the interval, which is the
    period. One a fraction of a period off would shift every count into the wrong row."""
    return math.floor(started_at / period) * period


def _row_index(rows: list[Row], offset: float, period: float) -> int | None:
    """The row of the period stamped `offset` seconds after the start (a datapoint is stamped
    with its period's start): the one its middle falls in, as rows end a few milliseconds after
    the period boundaries they wait for; the period under way when the test started belongs to
    the first row, one that began before the test ended but ends after it to the last."""
    middle = offset + period / 2
    if -period <= middle < 0:
        return 0
    for index, row in enumerate(rows):
        if row.t - row.interval <= middle < row.t:
            return index
    return len(rows) - 1 if middle >= rows[-1].t > offset else None
