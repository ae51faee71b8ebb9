"""CloudWatch's datapoints land in the rows they were recorded in: the watch reads them with
moto's GetMetricData (the local cloud's), which buckets from StartTime in whole-second periods,
and files them under the rows; and the rows' interval is a period CloudWatch accepts."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from loadtest.options import row_interval
from loadtest.timeline import Row, Timeline
from loadtest.watch import Recorder, ScalingWatch, Watched, metrics_start

ENDPOINT = [
    {"Name": "EndpointName", "Value": "dogs"},
    {"Name": "VariantName", "Value": "AllTraffic"},
]


def test_row_intervals_are_whole_seconds_and_on_aws_whole_minutes():
    assert row_interval("local", 7.0) == 9  # 60/7 = 8.57 s: moto's periods are whole seconds
    assert row_interval("local", 10.0) == 6
    assert row_interval("local", 1000.0) == 1
    assert row_interval("local", 10.0, 2.4) == 2
    assert row_interval("aws", 1.0) == 60
    assert row_interval("aws", 1.0, 30.0) == 60  # standard resolution: multiples of 60
    assert row_interval("aws", 1.0, 100.0) == 120


def test_metrics_start_on_the_period_the_test_started_in():
    assert metrics_start(1_800_000_004.3, 9) == 1_800_000_000  # 1_800_000_000 = 9 x 200_000_000
    assert metrics_start(1_800_000_000.0, 9) == 1_800_000_000
    assert metrics_start(1_800_000_059.9, 60) == 1_800_000_000 - 1_800_000_000 % 60


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def test_each_datapoint_is_filed_under_the_row_it_was_recorded_in(aws):
    interval = row_interval("local", 7.0)  # 9 s rows for 8.57 s policy minutes
    base = (math.floor(time.time() / interval) - 100) * interval  # a period boundary, past
    started_at = base + 4.3  # mid-period, as a test starts
    # Rows end a few milliseconds after the boundaries they wait for, as the watch's do.
    ends = [base + interval * k + 0.005 for k in range(1, 6)]
    rows = []
    for k, end in enumerate(ends):
        begin = started_at if k == 0 else ends[k - 1]
        rows.append(Row(t=end - started_at, interval=end - begin, users=1, requests=0,
                        successes=0, throttles=0, function_errors=0, handler_errors=0,
                        other_errors=0))  # fmt: skip
    # In row k: k + 1 invocations early in its period and 10 x (k + 1) late in it.
    cloudwatch = aws.client("cloudwatch")
    for k in range(len(rows)):
        period_start = base + interval * k
        for second, value in ((max(period_start + 1.5, started_at + 0.5), k + 1),
                              (period_start + interval - 0.2, 10 * (k + 1))):  # fmt: skip
            cloudwatch.put_metric_data(
                Namespace="AWS/SageMaker",
                MetricData=[{
                    "MetricName": "Invocations",
                    "Dimensions": ENDPOINT,
                    "Timestamp": datetime.fromtimestamp(second, UTC),
                    "Value": value,
                }],
            )  # fmt: skip
    watch = ScalingWatch(
        Watched("classifier", None, "dogs", "AllTraffic", interval=interval, time_scale=7.0),
        Recorder(),
        aws,
    )
    watch.started_at = started_at
    watch.timeline = Timeline("classifier", "endpoint/dogs/variant/AllTraffic", started_at, 7.0,
                              rows=rows)  # fmt: skip
    watch._fill_metrics()
    filled = [row.endpoint_invocations for row in watch.timeline.rows]
    assert filled == [11.0 * (k + 1) for k in range(len(rows))]
