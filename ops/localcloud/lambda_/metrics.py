"""The functions' CloudWatch metrics, namespace ``AWS/Lambda`` (LAM:monitoring-metrics,
LAM:monitoring-concurrency; AWS-SEMANTICS.md C7).

Each sample is kept per second and per dimension set, and put into CloudWatch (moto) once a
second as a statistic set (SampleCount, Sum, Minimum, Maximum), so ``Sum`` of ``Invocations``
and ``Maximum`` of ``ConcurrentExecutions`` read as on AWS through GetMetricStatistics and
GetMetricData. Dimension sets: ``FunctionName``; ``FunctionName`` + ``Resource``
(``<function>:<qualifier>``) when a qualifier was invoked; none, for the region-wide
``ConcurrentExecutions`` and ``UnreservedConcurrentExecutions``.
"""

from __future__ import annotations

import collections
import threading
import time
from datetime import UTC, datetime

from ops.localcloud.cwmetrics import Publisher, by_region

NAMESPACE = "AWS/Lambda"
_UNITS = {"Duration": "Milliseconds", "ProvisionedConcurrencyUtilization": "None"}
Dimensions = tuple[tuple[str, str], ...]


def dimension_sets(name: str, qualifier: str | None) -> list[Dimensions]:
    sets: list[Dimensions] = [(("FunctionName", name),)]
    if qualifier:
        sets.append((("FunctionName", name), ("Resource", f"{name}:{qualifier}")))
    return sets


class LambdaMetrics(Publisher):
    def __init__(self, moto, clock=time.time):
        super().__init__(moto, NAMESPACE, "lambda-metrics", clock)
        self._lock = threading.Lock()
        # (region, dimensions, metric, second) -> samples
        self._open: dict[tuple[str, Dimensions, str, int], list[float]] = collections.defaultdict(
            list
        )
        self.start()

    def add(
        self,
        region: str,
        sets: list[Dimensions],
        metric: str,
        value: float,
        at: float | None = None,
    ) -> None:
        """One sample, in the second ``at`` (epoch seconds; default now): an invocation's
        metrics carry the time it was invoked, however long it ran."""
        second = int(self.clock() if at is None else at)
        with self._lock:
            for dimensions in sets:
                self._open[(region, dimensions, metric, second)].append(float(value))

    def collect(self, everything: bool) -> dict[str, list[dict]]:
        current = int(self.clock())
        with self._lock:
            done = [key for key in self._open if everything or key[3] < current]
            samples = {key: self._open.pop(key) for key in done}
        due = by_region()
        for (region, dimensions, metric, second), values in sorted(samples.items()):
            due[region].append(
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions],
                    "Timestamp": datetime.fromtimestamp(second, UTC),
                    "StatisticValues": {
                        "SampleCount": float(len(values)),
                        "Sum": float(sum(values)),
                        "Minimum": float(min(values)),
                        "Maximum": float(max(values)),
                    },
                    "Unit": _UNITS.get(metric, "Count"),
                }
            )
        return due
