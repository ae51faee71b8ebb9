"""CloudWatch's GetMetricStatistics as AWS answers it: for exactly the dimensions asked.

AWS treats each combination of dimensions as a metric of its own: "CloudWatch treats each unique
combination of dimensions as a separate metric. If a specific combination of dimensions was not
published, you can't retrieve statistics for it." (API_GetMetricStatistics, Dimensions). moto
(5.2) matches every datapoint that has *at least* the dimensions asked for, so a function
invoked by its alias, whose datapoints carry ``FunctionName`` and also ``FunctionName`` +
``Resource`` (LAM:monitoring-metrics), counted twice for ``FunctionName`` alone, and a query
without dimensions summed every dimension set. `exact_dimensions` narrows moto's backend to the
datapoints whose dimensions are exactly the ones asked for, during that call only (moto's
server answers each request on a thread of its own, so the request's dimensions are kept per
thread). GetMetricData (exact already) and ListMetrics (where a filter is a subset, as on AWS)
are left as they are.
"""

from __future__ import annotations

import functools
import threading

from moto.cloudwatch.models import CloudWatchBackend

_asked = threading.local()


def exact_dimensions() -> None:
    """Patch moto's CloudWatch backend once (idempotent)."""
    if getattr(CloudWatchBackend, "_dogops_exact_dimensions", False):
        return
    all_metrics = CloudWatchBackend.get_all_metrics
    statistics = CloudWatchBackend.get_metric_statistics

    @functools.wraps(all_metrics)
    def get_all_metrics(self):
        data = all_metrics(self)
        wanted = getattr(_asked, "dimensions", None)
        if wanted is None:
            return data
        return [md for md in data if _dimensions(md) == wanted]

    @functools.wraps(statistics)
    def get_metric_statistics(self, *args, **kwargs):
        dimensions = kwargs.get("dimensions", args[6] if len(args) > 6 else None)
        _asked.dimensions = frozenset((d["Name"], d.get("Value")) for d in dimensions or [])
        try:
            return statistics(self, *args, **kwargs)
        finally:
            _asked.dimensions = None

    CloudWatchBackend.get_all_metrics = get_all_metrics
    CloudWatchBackend.get_metric_statistics = get_metric_statistics
    CloudWatchBackend._dogops_exact_dimensions = True


def _dimensions(datum) -> frozenset:
    return frozenset((d.name, d.value) for d in datum.dimensions)
