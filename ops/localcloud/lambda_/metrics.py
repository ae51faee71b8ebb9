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
import logging
import threading
import time
from datetime import UTC, datetime

log = logging.getLogger("dogops.localcloud")
NAMESPACE = "AWS/Lambda"
FLUSH_S = 1.0
PUT_BATCH = 20
_UNITS = {"Duration": "Milliseconds", "ProvisionedConcurrencyUtilization": "None"}
Dimensions = tuple[tuple[str, str], ...]


def dimension_sets(name: str, qualifier: str | None) -> list[Dimensions]:
    sets: list[Dimensions] = [(("FunctionName", name),)]
    if qualifier:
        sets.append((("FunctionName", name), ("Resource", f"{name}:{qualifier}")))
    return sets


class LambdaMetrics:
    def __init__(self, moto, clock=time.time):
        self.moto = moto
        self.clock = clock
        self._lock = threading.Lock()
        # (region, dimensions, metric, second) -> samples
        self._open: dict[tuple[str, Dimensions, str, int], list[float]] = collections.defaultdict(
            list
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lambda-metrics")
        self._thread.start()

    def add(self, region: str, sets: list[Dimensions], metric: str, value: float) -> None:
        second = int(self.clock())
        with self._lock:
            for dimensions in sets:
                self._open[(region, dimensions, metric, second)].append(float(value))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._flush(everything=True)

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            try:
                self._flush()
            except Exception:  # metrics must never take invocations down with them
                log.exception("could not publish the functions' metrics")

    def _flush(self, everything: bool = False) -> None:
        current = int(self.clock())
        with self._lock:
            done = [key for key in self._open if everything or key[3] < current]
            samples = {key: self._open.pop(key) for key in done}
        by_region: dict[str, list[dict]] = collections.defaultdict(list)
        for (region, dimensions, metric, second), values in sorted(samples.items()):
            by_region[region].append(
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
        for region, data in by_region.items():
            client = self.moto.client("cloudwatch", region)
            for start in range(0, len(data), PUT_BATCH):
                client.put_metric_data(
                    Namespace=NAMESPACE, MetricData=data[start : start + PUT_BATCH]
                )
