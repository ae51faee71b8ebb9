"""The scaling watch against a real endpoint in the local cloud: lambda_src's handler in front
of a one-instance endpoint, and while the load runs the endpoint's scalable target is
registered with MinCapacity 2, which scales it at once (as AWS does). The timeline must show
the desired and current counts go 1 -> 2 and the activity, and the endpoint's own count of
invocations (CloudWatch) must equal the function's successful answers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from loadtest.timeline import Timeline
from ops.localcloud import control
from tests.localcloud.test_endpoints import Hosting, clients

REPO = Path(__file__).resolve().parents[2]
VARIANT = "AllTraffic"


def handler_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(REPO / "lambda_src" / "handler.py", "handler.py")
    return buffer.getvalue()


@pytest.fixture
def hosting(cloud):
    hosting = Hosting(clients(cloud.url))
    yield hosting
    hosting.cleanup()


def test_the_watch_records_instance_counts_activities_and_the_endpoints_invocations(
    cloud, hosting, tmp_path
):
    name = f"watched-{uuid.uuid4().hex[:8]}"
    model = hosting.model(f"{name}-model", "v1")
    described = hosting.endpoint(name, hosting.config(f"{name}-config", model))
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    lam = hosting.client("lambda")
    function = f"{name}-fn"
    lam.create_function(
        FunctionName=function,
        Runtime="python3.11",
        Role=control.LOCAL_ROLE_ARN,
        Handler="handler.handler",
        Code={"ZipFile": handler_zip()},
        Timeout=30,
        Environment={"Variables": {"ENDPOINT_NAME": name}},
    )
    prefix = tmp_path / "lambda"
    # 60 policy seconds a wall second: 1 s before the load, 10 s of it. The test's endpoint
    # answers JSON, so the requests are {"url"} (the handler passes them on; nothing fetches).
    locust = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", "loadtest/lambda.py", "--headless",
         "--csv", str(prefix), "--function-name", function, "--qualifier", "",
         "--endpoint-name", name, "--variant-name", VARIANT, "--min-capacity", "2",
         "--max-capacity", "3",
         "--payload", "url", "--image-url", "https://images.example/dog.jpg",
         "--time-scale", "60", "--shape", "spike", "--warmup", "60", "--hold", "600",
         "--tail", "0", "--base-users", "1", "--peak-users", "2", "--rate", "0.05"],
        cwd=REPO, env={**os.environ, **cloud.environment()}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        history = Path(f"{prefix}_stats_history.csv")
        deadline = time.monotonic() + 30
        while not (history.exists() and history.read_text().count("\n") >= 3):
            assert locust.poll() is None, locust.stdout.read()
            assert time.monotonic() < deadline, "the load test did not start"
            time.sleep(0.2)
        hosting.client("application-autoscaling").register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=f"endpoint/{name}/variant/{VARIANT}",
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            MinCapacity=2,
            MaxCapacity=3,
        )
        output, _ = locust.communicate(timeout=60)
    finally:
        locust.kill()
    assert locust.returncode == 0, output[-4000:]
    timeline = Timeline.load(Path(f"{prefix}_timeline.json"))
    desired = [row.desired for row in timeline.rows]
    current = [row.current for row in timeline.rows]
    assert desired[0] == 1 and current[0] == 1, timeline.rows[0]
    assert desired[-1] == 2 and current[-1] == 2, output[-3000:]
    (activity,) = timeline.activities
    assert activity.desired == 2
    assert activity.description == "Setting desired instance count to 2."
    assert "minimum capacity was set to 2" in activity.cause
    assert activity.status == "Successful"
    assert 0 < activity.seen_at <= timeline.rows[-1].t
    totals = timeline.totals
    assert totals.successes == totals.requests > 0, totals
    assert sum(row.endpoint_invocations or 0 for row in timeline.rows) == totals.successes
    verdict = json.loads(Path(f"{prefix}_verdict.json").read_text())
    checks = {c["name"]: c for c in verdict["checks"]}
    assert checks["never above max"]["status"] == "passed"
    assert checks["never above max"]["observed"] == "at most 2"
