"""Lambda in the local cloud: functions run in real execution environments (awslambdaric),
with Lambda's reserved and provisioned concurrency, throttles, errors, timeouts, logs and
metrics, driven through boto3 and the AWS CLI."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
import types
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ops.localcloud import control
from ops.localcloud.app import LocalCloud
from tests.localcloud.conftest import aws_cli, validate_response, wait_for

HANDLER = """\
import os, time
INITIALISED_AT = time.time()
print("init done")

def handler(event, context):
    print("event", event)
    if event.get("fail"):
        raise ValueError("the handler failed on purpose")
    time.sleep(event.get("sleep", 0))
    return {
        "initialised_at": INITIALISED_AT,
        "initialization_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "greeting": os.environ.get("GREETING"),
        "version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "custom": context.client_context.custom if context.client_context else None,
    }
"""
NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=60)


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def client(cloud: LocalCloud, service: str = "lambda", config: Config | None = NO_RETRIES):
    import boto3

    return boto3.client(
        service,
        endpoint_url=cloud.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def create(lam, code: str = HANDLER, timeout: int = 10, memory: int = 256, **extra) -> str:
    name = f"fn-{uuid.uuid4().hex[:10]}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=control.LOCAL_ROLE_ARN,
        Handler="app.handler",
        Code={"ZipFile": zipped({"app.py": code})},
        Timeout=timeout,
        MemorySize=memory,
        Environment={"Variables": {"GREETING": "hello"}},
        **extra,
    )
    return name


def invoke(lam, name: str, event: dict, **extra) -> tuple[dict, dict]:
    answer = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **extra)
    return answer, json.loads(answer["Payload"].read() or b"null")


def at_once(count: int, call) -> list:
    """``call(i)`` from ``count`` threads released together; results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except Exception as exc:  # kept: the test looks at each
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "an invocation hung"
    return results


def test_invoke_runs_the_handler_with_its_environment_and_tails_its_log(cloud):
    lam = client(cloud)
    name = create(lam)
    answer, result = invoke(lam, name, {"n": 1}, LogType="Tail")
    validate_response(lam, "Invoke", {k: v for k, v in answer.items() if k != "Payload"})
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert answer["ExecutedVersion"] == "$LATEST"
    assert result["greeting"] == "hello"
    assert result["initialization_type"] == "on-demand"
    assert 0 < result["remaining_ms"] <= 10_000
    tail = base64.b64decode(answer["LogResult"]).decode()
    lines = tail.splitlines()
    assert lines[0] == f"START RequestId: {result['request_id']} Version: $LATEST"
    assert "event {'n': 1}" in lines
    assert lines[-2] == f"END RequestId: {result['request_id']}"
    report = lines[-1].split("\t")
    assert report[0] == f"REPORT RequestId: {result['request_id']}"
    assert report[3] == "Memory Size: 256 MB"
    assert report[-1].startswith("Init Duration: ")  # the environment's first invocation

    # Warm: the same environment (initialised once), no Init Duration; the client context
    # (base64 JSON on the wire) reaches the handler decoded.
    context = base64.b64encode(json.dumps({"custom": {"caller": "test"}}).encode()).decode()
    answer, again = invoke(lam, name, {"n": 2}, LogType="Tail", ClientContext=context)
    assert again["custom"] == {"caller": "test"}
    assert again["initialised_at"] == result["initialised_at"]
    assert "Init Duration" not in base64.b64decode(answer["LogResult"]).decode()


def test_a_handler_exception_and_a_timeout_are_reported_as_aws_reports_them(cloud):
    lam = client(cloud)
    name = create(lam, timeout=2)
    answer, error = invoke(lam, name, {"fail": True})
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "the handler failed on purpose"
    assert isinstance(error["stackTrace"], list)

    answer, error = invoke(lam, name, {"sleep": 5}, LogType="Tail")
    assert answer["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Error: Task timed out after 2.00 seconds")
    assert "Task timed out after 2.00 seconds" in base64.b64decode(answer["LogResult"]).decode()
    # The environment was reset: the next call starts a fresh one and succeeds.
    answer, _result = invoke(lam, name, {}, LogType="Tail")
    assert "FunctionError" not in answer
    assert "Init Duration" in base64.b64decode(answer["LogResult"]).decode()


def test_an_init_error_and_memory_over_the_limit_fail_the_invocation(cloud):
    lam = client(cloud)
    broken = create(lam, code="import no_such_module\n\ndef handler(e, c):\n    return 1\n")
    answer, error = invoke(lam, broken, {})
    assert answer["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module" in error["errorMessage"]

    hog = create(
        lam,
        code="def handler(e, c):\n    block = bytearray(300 * 1024 * 1024)\n"
        "    block[::4096] = b'x' * len(block[::4096])\n    return len(block)\n",
        memory=128,
    )
    answer, error = invoke(lam, hog, {})
    assert answer["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.OutOfMemory"
    assert "Runtime exited with error: signal: killed" in error["errorMessage"]


def test_reserved_concurrency_throttles_the_excess_and_loses_nothing(cloud):
    lam = client(cloud)
    name = create(lam)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 5}

    def call(i: int):
        answer, result = invoke(lam, name, {"sleep": 4})
        return answer["StatusCode"], result

    results = at_once(10, call)
    ok = [r for r in results if isinstance(r, tuple) and r[0] == 200]
    throttled = [r for r in results if isinstance(r, ClientError)]
    assert len(ok) == 5, results
    assert len(throttled) == 5, results
    for error in throttled:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert error.response["Error"]["Code"] == "TooManyRequestsException"
        assert error.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"

    # CloudWatch counts both sides the way the load test reads them.
    def sums() -> dict:
        return {
            "Invocations": metric(cloud, name, None, "Invocations", "Sum"),
            "Throttles": metric(cloud, name, None, "Throttles", "Sum"),
            "ConcurrentExecutions": metric(cloud, name, None, "ConcurrentExecutions", "Maximum"),
        }

    counted = wait_for(sums, lambda s: s["Invocations"] == 5 and s["Throttles"] == 5, 15, 0.5)
    assert counted["ConcurrentExecutions"] == 5


def test_provisioned_environments_are_ready_before_the_first_call(cloud):
    lam = client(cloud)
    name = create(lam)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=10)
    put = lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=3
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["Status"] == "IN_PROGRESS"
    assert put["AllocatedProvisionedConcurrentExecutions"] == 0
    config = wait_for(
        lambda: lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live"),
        lambda c: c["Status"] != "IN_PROGRESS",
        60,
        0.2,
    )
    validate_response(lam, "GetProvisionedConcurrencyConfig", config)
    assert config["Status"] == "READY"
    assert config["AvailableProvisionedConcurrentExecutions"] == 3
    ready_at = time.time()

    results = at_once(3, lambda i: invoke(lam, name, {"sleep": 1}, Qualifier="live"))
    for answer, result in results:
        assert answer["ExecutedVersion"] == version
        assert result["initialization_type"] == "provisioned-concurrency"
        assert result["initialised_at"] < ready_at  # initialised before any call: no cold start
    assert len({result["initialised_at"] for _, result in results}) == 3  # three environments

    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)
    assert [
        c["FunctionArn"].rsplit(":", 1)[1] for c in listed["ProvisionedConcurrencyConfigs"]
    ] == ["live"]
    # $LATEST cannot carry it; reserved may not go under it; it goes away when deleted.
    with pytest.raises(ClientError) as refused:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )
    assert "unpublished function versions" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as refused:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    assert refused.value.response["Error"]["Message"] == (
        " ReservedConcurrentExecutions  2 should not be lower than function's total "
        "provisioned concurrency [3]."
    )
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    with pytest.raises(ClientError) as missing:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert (
        missing.value.response["Error"]["Code"] == "ProvisionedConcurrencyConfigNotFoundException"
    )


def test_a_provisioned_config_whose_init_fails_is_failed(cloud):
    lam = client(cloud)
    name = create(lam, code="raise RuntimeError('no init')\n")
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=1
    )
    config = wait_for(
        lambda: lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version),
        lambda c: c["Status"] != "IN_PROGRESS",
        60,
        0.2,
    )
    assert config["Status"] == "FAILED"
    assert config["StatusReason"] == "FUNCTION_ERROR_INIT_FAILURE"
    assert config["AllocatedProvisionedConcurrentExecutions"] == 0


def test_event_and_dry_run_invocations(cloud):
    lam = client(cloud)
    name = create(lam)
    dry = lam.invoke(FunctionName=name, InvocationType="DryRun")
    assert dry["StatusCode"] == 204
    event = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"marker": "async"}')
    assert event["StatusCode"] == 202
    logs = client(cloud, "logs", None)

    def messages() -> list[str]:
        found = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        return [e["message"] for e in found]

    lines = wait_for(messages, lambda m: any(x.startswith("REPORT") for x in m), 30, 0.5)
    assert "event {'marker': 'async'}" in lines
    with pytest.raises(ClientError) as missing:
        lam.invoke(FunctionName="no-such-function", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_the_aws_cli_invokes_a_function(cloud, tmp_path):
    lam = client(cloud)
    name = create(lam)
    out = tmp_path / "out.json"
    env = {**control.client_environment(cloud.url), "AWS_ACCESS_KEY_ID": "testing"}
    done = aws_cli(
        "lambda",
        "invoke",
        "--function-name",
        name,
        "--payload",
        '{"n": 7}',
        "--log-type",
        "Tail",
        str(out),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["StatusCode"] == 200
    assert answer["ExecutedVersion"] == "$LATEST"
    assert "START RequestId" in base64.b64decode(answer["LogResult"]).decode()
    assert json.loads(out.read_text())["greeting"] == "hello"


def test_reserving_may_not_leave_less_than_the_minimum_unreserved(cloud):
    lam = client(cloud)
    name = create(lam)
    settings = lam.get_account_settings()
    validate_response(lam, "GetAccountSettings", settings)
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
    unreserved = settings["AccountLimit"]["UnreservedConcurrentExecutions"]
    with pytest.raises(ClientError) as refused:
        lam.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=unreserved - 99
        )
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert refused.value.response["Error"]["Message"] == (
        "Specified ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [100]."
    )
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=unreserved - 100)
    lam.delete_function_concurrency(FunctionName=name)
    assert (
        lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") is None
    )


def test_a_new_accounts_low_limit_refuses_reserved_100(tmp_path):
    """New accounts start with a low concurrency limit: the mission's reserved 100 then fails,
    as Terraform's apply would. (A cloud process of its own: moto's records are per process.)"""
    ready = tmp_path / "ready.json"
    env = {**os.environ, "DOGOPS_LAMBDA_CONCURRENCY_LIMIT": "10"}
    command = [sys.executable, "-m", "ops.localcloud.app", "--home", str(tmp_path / "home")]
    with open(tmp_path / "cloud.log", "w") as log:
        process = subprocess.Popen(
            [*command, "--port", "0", "--ready-file", str(ready)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: ready.exists() or process.poll() is not None, bool, 60, 0.05)
        small = types.SimpleNamespace(url=json.loads(ready.read_text())["url"])
        lam = client(small)
        name = create(lam)
        assert lam.get_account_settings()["AccountLimit"]["ConcurrentExecutions"] == 10
        with pytest.raises(ClientError) as refused:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=100)
        assert refused.value.response["Error"]["Message"] == (
            "Specified ReservedConcurrentExecutions for function decreases account's "
            "UnreservedConcurrentExecution below its minimum value of [10]."
        )
        # Unreserved, the function still runs, within the account's 10.
        _answer, result = invoke(lam, name, {})
        assert result["greeting"] == "hello"
    finally:
        process.terminate()
        process.wait(timeout=60)


def metric(cloud, name: str, resource: str | None, metric_name: str, stat: str) -> float:
    """The function's ``metric_name`` over the last ten minutes (``Sum``: added up;
    ``Maximum``: the largest), for the function alone or (``resource``) one qualifier."""
    dimensions = [{"Name": "FunctionName", "Value": name}]
    if resource is not None:
        dimensions.append({"Name": "Resource", "Value": f"{name}:{resource}"})
    cw = client(cloud, "cloudwatch", None)
    points = cw.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName=metric_name,
        Dimensions=dimensions,
        StartTime=datetime.now(UTC) - timedelta(minutes=10),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=3600,
        Statistics=[stat],
    )["Datapoints"]
    values = [p[stat] for p in points]
    return sum(values) if stat == "Sum" else max(values, default=0)


def live_with_provisioned(lam, name: str, count: int) -> str:
    """Publish a version, point alias ``live`` at it, provision ``count`` environments on the
    alias and wait until they are READY; the version."""
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=count
    )
    wait_for(
        lambda: lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live"),
        lambda c: c["Status"] == "READY",
        60,
        0.2,
    )
    return version


def test_beyond_provisioned_concurrency_invocations_spill_over_on_demand(cloud):
    lam = client(cloud)
    name = create(lam)
    live_with_provisioned(lam, name, 1)
    results = at_once(2, lambda i: invoke(lam, name, {"sleep": 1}, Qualifier="live")[1])
    kinds = sorted(r["initialization_type"] for r in results)
    assert kinds == ["on-demand", "provisioned-concurrency"]
    wait_for(
        lambda: metric(cloud, name, "live", "ProvisionedConcurrencySpilloverInvocations", "Sum"),
        lambda total: total == 1,
        15,
        0.5,
    )
    assert metric(cloud, name, "live", "ProvisionedConcurrentExecutions", "Maximum") == 1
    assert metric(cloud, name, "live", "ProvisionedConcurrencyUtilization", "Maximum") == 1.0
    wait_for(lambda: metric(cloud, name, "live", "Invocations", "Sum"), lambda n: n == 2, 15, 0.5)
    # The function's own series counts them once (the alias's datapoints carry one more
    # dimension: a metric of their own, as on AWS).
    assert metric(cloud, name, None, "Invocations", "Sum") == 2


def test_idle_on_demand_environments_are_reaped(cloud):
    from ops.localcloud.lambda_ import LambdaService

    environments = cloud.service(LambdaService).environments
    lam = client(cloud)
    name = create(lam)
    first = invoke(lam, name, {})[1]
    assert invoke(lam, name, {})[1]["initialised_at"] == first["initialised_at"]  # warm
    saved = environments.idle_s
    environments.idle_s = 0.5
    try:
        wait_for(
            lambda: [e for e in environments.alive() if e.spec.name == name],
            lambda alive: not alive,
            15,
            0.2,
        )
    finally:
        environments.idle_s = saved
    assert invoke(lam, name, {})[1]["initialised_at"] > first["initialised_at"]  # a cold start


def test_provisioned_concurrency_follows_its_alias_to_a_new_version(cloud):
    lam = client(cloud)
    name = create(lam)
    live_with_provisioned(lam, name, 1)

    def config() -> dict:
        return lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")

    lam.update_function_code(FunctionName=name, ZipFile=zipped({"app.py": HANDLER + "\n# v2\n"}))
    second = lam.publish_version(FunctionName=name)["Version"]
    moved = lam.update_alias(FunctionName=name, Name="live", FunctionVersion=second)
    assert moved["FunctionVersion"] == second
    wait_for(config, lambda c: c["Status"] == "READY", 60, 0.2)
    answer, result = invoke(lam, name, {}, Qualifier="live")
    assert answer["ExecutedVersion"] == second
    assert result["version"] == second
    assert result["initialization_type"] == "provisioned-concurrency"


def test_a_function_is_invoked_by_its_arn_or_partial_arn_with_a_qualifier(cloud):
    lam = client(cloud)
    name = create(lam)
    version = lam.publish_version(FunctionName=name)["Version"]
    arn = lam.create_alias(FunctionName=name, Name="blue", FunctionVersion=version)["AliasArn"]
    assert invoke(lam, arn, {})[0]["ExecutedVersion"] == version
    partial = f"123456789012:function:{name}"
    assert invoke(lam, partial, {}, Qualifier="blue")[0]["ExecutedVersion"] == version
    with pytest.raises(ClientError) as missing:
        invoke(lam, name, {}, Qualifier="green")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert missing.value.response["Error"]["Message"].endswith(f"function:{name}:green")
    with pytest.raises(ClientError) as bad:
        lam.invoke(FunctionName=name, Payload=b"{not json")
    assert bad.value.response["Error"]["Code"] == "InvalidRequestContentException"
