"""Application Auto Scaling in the local cloud: the API through boto3 (shapes checked against
botocore's model, AWS's errors), records kept across a restart, and a real endpoint scaled from
1 to 3 instances under load and back down, with the same activities `ops.scaling.simulate`
predicts for the same load.

These tests run on their own local cloud with ``time_scale`` 60: a policy minute is one wall
second, so the mission's 300 s scale-out cooldown lasts 5 s."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from ops.cli import app
from ops.localcloud import control
from ops.localcloud.app import LocalCloud
from ops.localcloud.autoscaling import AutoscalingService
from ops.localcloud.autoscaling.api import make_engine
from ops.localcloud.autoscaling.backend import AutoscalingBackend, Policy
from ops.scaling.policy import Activity, ScalableTarget, StatusCode, TargetTrackingPolicy
from ops.scaling.simulate import simulate
from tests.localcloud.conftest import validate_response, wait_for
from tests.localcloud.test_endpoints import Hosting, clients

TIME_SCALE = 60.0
NS = "sagemaker"
DIM = "sagemaker:variant:DesiredInstanceCount"


@pytest.fixture(scope="module")
def fast_cloud(tmp_path_factory: pytest.TempPathFactory):
    cloud = LocalCloud(
        tmp_path_factory.mktemp("autoscaling"), persist=False, time_scale=TIME_SCALE
    ).start()
    yield cloud
    cloud.stop()


@pytest.fixture
def hosting(fast_cloud):
    hosting = Hosting(clients(fast_cloud.url))
    hosting.aas = clients(fast_cloud.url)("application-autoscaling")
    yield hosting
    hosting.cleanup()


def one_instance_endpoint(hosting: Hosting, name: str) -> str:
    model = hosting.model(f"{name}-model", "v1")
    described = hosting.endpoint(name, hosting.config(f"{name}-config", model))
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    return f"endpoint/{name}/variant/AllTraffic"


def error_of(call) -> dict:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]


def activities(aas, resource_id: str, not_scaled: bool = False) -> list[dict]:
    answer = aas.describe_scaling_activities(
        ServiceNamespace=NS, ResourceId=resource_id, IncludeNotScaledActivities=not_scaled
    )
    validate_response(aas, "DescribeScalingActivities", answer)
    return answer["ScalingActivities"]


def test_targets_policies_and_their_alarms_as_aws_shapes_them(hosting):
    aas = hosting.aas
    resource = one_instance_endpoint(hosting, "aas-api")
    target = {"ServiceNamespace": NS, "ResourceId": resource, "ScalableDimension": DIM}

    missing = error_of(lambda: aas.put_scaling_policy(PolicyName="p", **target))
    assert missing["Code"] == "ObjectNotFoundException"
    assert missing["Message"] == (
        f"No scalable target registered for service namespace: sagemaker, resource ID: "
        f"{resource}, scalable dimension: {DIM}"
    )
    unbounded = error_of(lambda: aas.register_scalable_target(**target))
    assert unbounded["Code"] == "ValidationException"
    answer = aas.register_scalable_target(
        **target, MinCapacity=1, MaxCapacity=3, Tags={"team": "dogs"}
    )
    validate_response(aas, "RegisterScalableTarget", answer)
    arn = answer["ScalableTargetARN"]
    aas.tag_resource(ResourceARN=arn, Tags={"env": "local"})
    aas.untag_resource(ResourceARN=arn, TagKeys=["team"])
    tags = aas.list_tags_for_resource(ResourceARN=arn)
    validate_response(aas, "ListTagsForResource", tags)
    assert tags["Tags"] == {"env": "local"}
    unknown = error_of(lambda: aas.list_tags_for_resource(ResourceARN=arn + "0"))
    assert unknown["Code"] == "ResourceNotFoundException"
    assert aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"] == []
    scheduled = error_of(
        lambda: aas.put_scheduled_action(
            ScheduledActionName="nightly", Schedule="cron(0 0 * * ? *)", **target
        )
    )
    assert scheduled["Code"] == "ValidationException"
    assert answer["ScalableTargetARN"].startswith(
        "arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/"
    )
    described = aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[resource])
    validate_response(aas, "DescribeScalableTargets", described)
    [found] = described["ScalableTargets"]
    assert (found["MinCapacity"], found["MaxCapacity"]) == (1, 3)
    assert found["RoleARN"].endswith("AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")

    configuration = {
        "TargetValue": 70.0,
        "PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
        },
        "ScaleInCooldown": 30,
        "ScaleOutCooldown": 300,
    }
    put = aas.put_scaling_policy(
        PolicyName="aas-api-policy",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration=configuration,
        **target,
    )
    validate_response(aas, "PutScalingPolicy", put)
    high, low = (alarm["AlarmName"] for alarm in put["Alarms"])
    assert high.startswith(f"TargetTracking-{resource}-AlarmHigh-")
    assert low.startswith(f"TargetTracking-{resource}-AlarmLow-")
    policies = aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=resource)
    validate_response(aas, "DescribeScalingPolicies", policies)
    [policy] = policies["ScalingPolicies"]
    # The declared numbers, whatever the local cloud's time scale.
    assert policy["TargetTrackingScalingPolicyConfiguration"] == configuration
    assert policy["Alarms"] == put["Alarms"] and policy["PolicyARN"] == put["PolicyARN"]
    assert ":scalingPolicy:" in policy["PolicyARN"]
    assert policy["PolicyARN"].endswith(f":resource/sagemaker/{resource}:policyName/aas-api-policy")
    cloudwatch = clients(hosting.sm.meta.endpoint_url)("cloudwatch")
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert alarms[high]["Threshold"] == 70.0 and alarms[high]["EvaluationPeriods"] == 3
    assert alarms[low]["Threshold"] == pytest.approx(63.0)
    assert alarms[low]["EvaluationPeriods"] == 15
    assert alarms[high]["MetricName"] == "InvocationsPerInstance"

    step = error_of(
        lambda: aas.put_scaling_policy(
            PolicyName="steps",
            PolicyType="StepScaling",
            StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity"},
            **target,
        )
    )
    assert step["Code"] == "ValidationException" and "StepScaling" in step["Message"]
    latency = error_of(
        lambda: aas.put_scaling_policy(
            PolicyName="latency",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 100.0,
                "CustomizedMetricSpecification": {
                    "MetricName": "ModelLatency",
                    "Namespace": "AWS/SageMaker",
                    "Dimensions": [{"Name": "EndpointName", "Value": "aas-api"}],
                    "Statistic": "Average",
                },
            },
            **target,
        )
    )
    assert latency["Code"] == "ValidationException"
    other = error_of(
        lambda: aas.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId="service/c/s",
            ScalableDimension="ecs:service:DesiredCount",
            MinCapacity=1,
            MaxCapacity=2,
        )
    )
    assert other["Code"] == "ValidationException"
    gone = error_of(lambda: aas.delete_scaling_policy(PolicyName="nope", **target))
    assert gone["Code"] == "ObjectNotFoundException"
    assert gone["Message"].endswith("policy name: nope")

    aas.delete_scaling_policy(PolicyName="aas-api-policy", **target)
    assert aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"] == []
    assert not {high, low} & {a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    aas.deregister_scalable_target(**target)
    assert aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"] == []
    again = error_of(lambda: aas.deregister_scalable_target(**target))
    assert again["Code"] == "ObjectNotFoundException"


def test_bounds_that_exclude_the_instance_count_scale_at_once(hosting):
    aas = hosting.aas
    resource = one_instance_endpoint(hosting, "aas-bounds")
    target = {"ServiceNamespace": NS, "ResourceId": resource, "ScalableDimension": DIM}
    aas.register_scalable_target(**target, MinCapacity=2, MaxCapacity=3)
    done = wait_for(
        lambda: activities(aas, resource),
        lambda found: found and found[0]["StatusCode"] != "InProgress",
        timeout=30,
        poll=0.1,
    )
    [activity] = done
    assert activity["Cause"] == "minimum capacity was set to 2"
    assert activity["Description"] == "Setting desired instance count to 2."
    assert activity["StatusCode"] == "Successful", activity.get("StatusMessage")
    variant = hosting.describe("aas-bounds")["ProductionVariants"][0]
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (2, 2)
    aas.deregister_scalable_target(**target)


def test_records_survive_a_restart(tmp_path):
    path = tmp_path / "state.json"
    key = ("us-east-1", NS, "endpoint/ep/variant/AllTraffic", DIM)
    first = AutoscalingBackend(path)
    target, created = first.register(key, 1, 4, now=1000.0)
    assert created
    policy = Policy(
        "us-east-1",
        key[2],
        "ep-policy",
        configuration={"TargetValue": 70.0, "ScaleInCooldown": 30},
        arn="arn:policy",
        created=1000.0,
        alarm_names=[],
    )
    policy.engine = make_engine(policy, target)
    policy.alarm_names = [alarm.name for alarm in policy.engine.alarms]
    first.put_policy(policy)
    running = Activity(
        "a-1",
        ScalableTarget(key[2], 1, 4),
        "Setting desired instance count to 2.",
        "monitor alarm x in state ALARM triggered policy ep-policy",
        start_time=1060.0,
        status_code=StatusCode.IN_PROGRESS,
        previous_capacity=1,
        desired_capacity=2,
    )
    first.record(key, running)

    second = AutoscalingBackend(path)
    second.restore(2000.0, lambda p: make_engine(p, second.targets[p.key]))
    assert (second.target(key).min_capacity, second.target(key).max_capacity) == (1, 4)
    assert second.target(key).arn == target.arn
    restored = second.policy(key, "ep-policy")
    assert restored.arn == "arn:policy" and restored.configuration["ScaleInCooldown"] == 30
    assert [alarm.name for alarm in restored.engine.alarms] == policy.alarm_names
    [(_, activity)] = second.list_activities("us-east-1", NS)
    assert activity.status_code is StatusCode.FAILED and activity.end_time == 2000.0
    assert "stopped" in activity.status_message


class Load:
    """InvokeEndpoint at a fixed rate (requests per wall second), from a pool of threads, until
    stopped; counts failures."""

    def __init__(self, runtime, endpoint: str, rate: float):
        self.runtime, self.endpoint, self.rate = runtime, endpoint, rate
        self.failures: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=32)  # room for a slow CI machine
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            due = start + self.sent / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
                continue
            self._pool.submit(self._invoke)
            self.sent += 1

    def _invoke(self) -> None:
        try:
            self.runtime.invoke_endpoint(
                EndpointName=self.endpoint, Body=b"{}", ContentType="application/json"
            )
        except Exception as exc:
            self.failures.append(repr(exc))


def test_an_endpoint_scales_out_under_load_and_back_in_as_the_simulator_predicts(
    fast_cloud, hosting
):
    aas = hosting.aas
    resource = one_instance_endpoint(hosting, "aas-load")
    target = {"ServiceNamespace": NS, "ResourceId": resource, "ScalableDimension": DIM}
    aas.register_scalable_target(**target, MinCapacity=1, MaxCapacity=3)
    # The mission's cooldowns; a target of 20 invocations per instance per minute, and a load
    # of 57 a minute: one instance is far above it (ceil(57 / 20) = 3), three hold at 19, under
    # the target and above AlarmLow's 18.
    target_value, rate = 20.0, 57.0
    aas.put_scaling_policy(
        PolicyName="aas-load-policy",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": target_value,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 30,
            "ScaleOutCooldown": 300,
        },
        **target,
    )
    clock = fast_cloud.service(AutoscalingService).controller.clock
    runtime = clients(fast_cloud.url)("sagemaker-runtime", Config(retries={"max_attempts": 1}))
    minute = 60.0 / TIME_SCALE  # wall seconds per policy minute

    load_started = clock.now()
    load = Load(runtime, "aas-load", rate * TIME_SCALE / 60.0).start()
    try:
        scaled_out = wait_for(
            lambda: activities(aas, resource),
            lambda found: found and found[0]["StatusCode"] == "Successful",
            timeout=30,
            poll=0.1,
        )
        time.sleep(6 * minute)  # it holds at 3: under the target, above AlarmLow
    finally:
        load.stop()
    load_stopped = clock.now()
    assert load.failures == []
    cloudwatch = clients(fast_cloud.url)("cloudwatch")
    held = activities(aas, resource)
    assert [a["Description"] for a in held] == ["Setting desired instance count to 3."]
    out = scaled_out[0]

    done = wait_for(
        lambda: activities(aas, resource),
        lambda found: (
            found[0]["Description"].endswith(" 1.") and found[0]["StatusCode"] == "Successful"
        ),
        timeout=40,
        poll=0.1,
    )
    finished = clock.now()
    # CloudWatch shows the alarm states the engine saw: quiet for 15 minutes, AlarmLow fired.
    low = cloudwatch.describe_alarms(AlarmNamePrefix=f"TargetTracking-{resource}-AlarmLow")
    assert low["MetricAlarms"][0]["StateValue"] == "ALARM"
    variant = hosting.describe("aas-load")["ProductionVariants"][0]
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 1)
    measured = list(reversed(done))
    assert all(a["StatusCode"] == "Successful" for a in measured)
    assert all("triggered policy aas-load-policy" in a["Cause"] for a in measured)

    # The simulator, with the same policy, over the same minutes of load, with new instances
    # serving as soon as they did here.
    loaded = round((load_stopped - load_started) / 60)
    quiet = round((finished - load_stopped) / 60) + 2
    warmup = (out["EndTime"] - out["StartTime"]).total_seconds()
    predicted = simulate(
        [rate] * loaded + [0.0] * quiet,
        ScalableTarget(resource, 1, 3),
        TargetTrackingPolicy("aas-load-policy", target_value, 30, 300),
        warmup_seconds=int(warmup),
    )
    expected = [a for a in predicted.activities if a.desired_capacity is not None]
    assert [a.desired_capacity for a in expected] == [3, 2, 1]
    assert [int(a["Description"].split()[-1].rstrip(".")) for a in measured] == [
        a.desired_capacity for a in expected
    ]
    start = load_started
    timeline = [
        (
            a["Description"],
            round((a["StartTime"].timestamp() - start) / 60, 1),
            round((a["EndTime"].timestamp() - start) / 60, 1),
        )
        for a in measured
    ]
    simulated = [(a.description, a.start_time / 60, a.end_time / 60) for a in expected]
    print(f"\nmeasured (policy minutes from the load's start): {timeline}")
    print(f"simulated (minutes from the start): {simulated}")
    print(f"load: {loaded} min at {rate:g}/min, then quiet; warm-up {warmup:.0f} s")


def test_ops_local_up_passes_its_time_scale_on(monkeypatch):
    asked = {}

    def up_detached(port, time_scale):
        asked.update(port=port, time_scale=time_scale)
        return control.State(url="http://127.0.0.1:1", pid=1, home="h", log="log")

    monkeypatch.setattr(control, "up_detached", up_detached)
    result = CliRunner().invoke(
        app, ["local", "up", "--detach", "--no-bootstrap", "--time-scale", "20"]
    )
    assert result.exit_code == 0, result.output
    assert asked == {"port": 0, "time_scale": 20.0}
    refused = CliRunner().invoke(app, ["local", "up", "--detach", "--time-scale", "0"])
    assert refused.exit_code == 2
