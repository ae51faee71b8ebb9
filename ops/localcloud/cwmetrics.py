"""Metrics a service keeps per second and puts into CloudWatch (moto) once a second, so that
GetMetricStatistics and GetMetricData read them as on AWS (SageMaker endpoints' ``AWS/SageMaker``,
Lambda's ``AWS/Lambda``).

A service subclasses `Publisher` and says what is due (`collect`): the datums of the seconds
that are over, or of every second when the service stops.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

log = logging.getLogger("dogops.localcloud")
FLUSH_S = 1.0
PUT_BATCH = 20  # PutMetricData's long-standing per-call limit of metric data


class Publisher:
    def __init__(self, moto, namespace: str, name: str, clock=time.time):
        self.moto = moto
        self.namespace = namespace
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self) -> None:
        self._thread.start()

    def collect(self, everything: bool) -> dict[str, list[dict]]:
        """{region: PutMetricData datums} due now (with ``everything``: all that is held)."""
        raise NotImplementedError

    def flush(self, everything: bool = False) -> None:
        for region, data in self.collect(everything).items():
            client = self.moto.client("cloudwatch", region)
            for start in range(0, len(data), PUT_BATCH):
                batch = data[start : start + PUT_BATCH]
                client.put_metric_data(Namespace=self.namespace, MetricData=batch)

    def close(self) -> None:
        """Publish what is left (also the current second) and stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.flush(everything=True)

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            try:
                self.flush()
            except Exception:  # metrics must never take the service down with them
                log.exception("could not publish %s metrics", self.namespace)


def by_region() -> collections.defaultdict[str, list[dict]]:
    return collections.defaultdict(list)
