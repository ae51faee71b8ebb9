"""The locustfile run headless against the local cloud, as a user runs it: a real function
(a tiny handler that sometimes fails) with reserved concurrency 2 under 4 users, so some calls
are throttled, and every request is counted on both sides (Locust's requests = Lambda's
Invocations + Throttles in CloudWatch, its function errors = Lambda's Errors). Also `ops
loadtest`, its JSON and exit code, and that the `ops` CLI stays free of Locust's gevent
patching."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from PIL import Image
from typer.testing import CliRunner

from loadtest.timeline import Timeline
from loadtest.verdict import Expectations, Status, judge
from ops.cli import app
from ops.localcloud import control

REPO = Path(__file__).resolve().parents[2]
# Answers as lambda_src/handler.py does on success, after a little work, so calls overlap;
# every fifth call of an execution environment raises (a function error).
HANDLER = """\
import itertools, json, time

CALLS = itertools.count(1)

def handler(event, context):
    time.sleep(0.2)
    if next(CALLS) % 5 == 0:
        raise ValueError("every fifth call fails")
    return {"statusCode": 200, "headers": {}, "body": json.dumps({"size": len(event["body"])})}
"""
RESERVED = 2
# 60 policy seconds per wall second: the 240 s hold takes 4 s, each user calls 3 times a second.
LOAD = ["--time-scale", "60", "--shape", "spike", "--warmup", "0", "--hold", "240", "--tail",
        "0", "--base-users", "0", "--rate", "0.05", "--max-p95-ms", "20000"]  # fmt: skip


def _zip(code: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", code)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def function(cloud) -> str:
    """A function with an alias ``live`` and reserved concurrency 2."""
    lam = boto3.client(
        "lambda", endpoint_url=cloud.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    name = f"loadtest-{uuid.uuid4().hex[:8]}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=control.LOCAL_ROLE_ARN,
        Handler="app.handler",
        Code={"ZipFile": _zip(HANDLER)},
        Timeout=10,
    )
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=RESERVED)
    return name


@pytest.fixture
def environment(cloud) -> dict[str, str]:
    return {**os.environ, **cloud.environment()}


@pytest.fixture
def jpeg(tmp_path: Path) -> Path:
    path = tmp_path / "dog.jpg"
    Image.new("RGB", (64, 48), (150, 100, 50)).save(path)
    return path


def cloudwatch_sum(cloud, function: str, metric: str) -> float:
    """The metric's Sum over the last ten minutes, by FunctionName alone. GetMetricData: the
    local cloud's (moto's) GetMetricStatistics also adds the datapoints that carry more
    dimensions (FunctionName with Resource, for the alias), which AWS does not."""
    cw = boto3.client(
        "cloudwatch", endpoint_url=cloud.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    stat = {
        "Metric": {
            "Namespace": "AWS/Lambda",
            "MetricName": metric,
            "Dimensions": [{"Name": "FunctionName", "Value": function}],
        },
        "Period": 3600,
        "Stat": "Sum",
    }
    result = cw.get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": stat}],
        StartTime=datetime.now(UTC) - timedelta(minutes=10),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
    )["MetricDataResults"][0]
    return sum(result["Values"])


def test_locust_headless_counts_every_request_on_both_sides(cloud, function, environment,
                                                            jpeg, tmp_path):  # fmt: skip
    prefix = tmp_path / "reports" / "lambda"
    run = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "loadtest/lambda.py", "--headless",
         "--csv", str(prefix), "--html", f"{prefix}.html", "--function-name", function,
         "--qualifier", "live", "--no-endpoint", "--peak-users", "4", "--image-file", str(jpeg),
         "--reserved-concurrency", str(RESERVED), "--max-error-ratio", "0.5", *LOAD],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    verdict = json.loads(Path(f"{prefix}_verdict.json").read_text())
    assert verdict["passed"], verdict
    counts = verdict["counts"]
    assert counts["successes"] > 0
    assert counts["throttles"] > 0  # 4 users, 2 reserved
    assert counts["function_errors"] > 0
    assert counts["requests"] == (
        counts["successes"] + counts["throttles"] + counts["function_errors"]
    )
    checks = {c["name"]: c for c in verdict["checks"]}
    assert checks["throttled only at the limit"]["status"] == "passed"
    assert checks["concurrency within reserved"]["status"] == "passed"
    # Both sides: what Locust counted, what the function's metrics say (read here, and as the
    # watch read them into the timeline).
    invocations = cloudwatch_sum(cloud, function, "Invocations")
    throttles = cloudwatch_sum(cloud, function, "Throttles")
    errors = cloudwatch_sum(cloud, function, "Errors")
    assert invocations + throttles == counts["requests"]
    assert (throttles, errors) == (counts["throttles"], counts["function_errors"])
    assert counts["lambda_invocations"] == invocations
    assert counts["lambda_throttles"] == throttles
    assert counts["lambda_errors"] == errors
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    assert int(rows["Aggregated"]["Request Count"]) == counts["requests"]
    assert int(rows["Aggregated"]["Failure Count"]) == (
        counts["throttles"] + counts["function_errors"]
    )
    with open(f"{prefix}_failures.csv", newline="") as handle:
        kinds = {row["Error"]: int(row["Occurrences"]) for row in csv.DictReader(handle)}
    assert kinds == {
        "Throttled('ReservedFunctionConcurrentInvocationLimitExceeded')": counts["throttles"],
        "FunctionError('Unhandled: ValueError: every fifth call fails')": counts["function_errors"],
    }
    assert Path(f"{prefix}.html").stat().st_size > 0
    assert Path(f"{prefix}_scaling.png").read_bytes()[:4] == b"\x89PNG"
    # The recorded timeline judged again with a reserved limit the function does not have
    # (Terraform's 100, as without --reserved-concurrency): Lambda throttled with only 2 in
    # flight, which the verdict must call a failure.
    timeline = Timeline.load(Path(f"{prefix}_timeline.json"))
    assert sum(row.requests for row in timeline.rows) == counts["requests"]
    expect = Expectations(**verdict["expectations"])
    assert expect.reserved_concurrency == RESERVED
    wrong = judge(timeline, dataclasses.replace(expect, reserved_concurrency=100))
    (check,) = [c for c in wrong.checks if c.name == "throttled only at the limit"]
    assert check.status is Status.FAILED


def test_ops_loadtest_prints_the_verdict_and_the_paths_as_json(cloud, function, jpeg, tmp_path,
                                                               monkeypatch):  # fmt: skip
    for key, value in cloud.environment().items():
        monkeypatch.setenv(key, value)
    prefix = tmp_path / "run" / "lambda"
    result = CliRunner().invoke(
        app,
        ["loadtest", "--json", "--out", str(prefix), "--peak-users", "1", "--image-file",
         str(jpeg), "--", "--function-name", function, "--no-endpoint", "--max-error-ratio",
         "0.5", *LOAD],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["passed"] is True
    assert document["verdict"]["counts"]["throttles"] == 0  # one user, under the limit
    assert "--function-name" in document["command"]
    for name in ("timeline_csv", "png", "verdict_json", "html", "locust_stats_csv"):
        assert Path(document["outputs"][name]).exists(), name


def test_refused_options_exit_2_before_any_call(cloud, environment, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "loadtest/lambda.py", "--headless",
         "--csv", str(tmp_path / "x"), *LOAD, "--peak-users", "0"],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr[-2000:]
    assert "peak" in run.stderr


def test_the_ops_cli_does_not_import_locust():
    """Importing Locust monkey-patches the process with gevent; `ops` runs it as a child."""
    code = (
        "import sys, ops.cli, loadtest.report, loadtest.options, loadtest.headless;"
        "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert found.stdout.strip() == "[]", found.stderr
