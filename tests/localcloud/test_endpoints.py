"""SageMaker endpoints in the local cloud, with real model-server processes on 127.0.0.1:
created and invoked through boto3 and the AWS CLI, updated blue/green under traffic without a
failed request, kept on the old model when the new one does not load, an instance killed and
replaced, rescaled, their metrics in CloudWatch, and their records kept across a restart.

The model is a tiny ``model.tar.gz`` whose ``code/inference.py`` needs nothing but the
standard library, so an instance answers /ping well under a second after it starts."""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ops.localcloud import control
from ops.localcloud.sagemaker import SageMakerService
from tests.localcloud.conftest import ROLE, aws_cli, validate_response, wait_for
from tests.localcloud.test_persistence import CloudProcess

BUCKET = "dogops-endpoints"
REGION = "us-east-1"
VARIANT = "AllTraffic"
INFERENCE = """
    import json
    import os
    import time


    class ModelFailure(Exception):
        def __init__(self, message, status_code):
            super().__init__(message)
            self.status_code = status_code


    def model_fn(model_dir):
        with open(os.path.join(model_dir, "model.json")) as f:
            model = json.load(f)
        if model.get("broken"):
            raise RuntimeError("this model does not load")
        time.sleep(model.get("hang", 0))
        return model


    def input_fn(body, content_type):
        if content_type != "application/json":
            raise ModelFailure(f"unsupported content type {content_type}", 415)
        return json.loads(body)


    def predict_fn(data, model):
        if data.get("crash"):
            raise RuntimeError("the model fell over")
        time.sleep(data.get("sleep", 0))
        return {"version": model["version"], "echo": data.get("echo"), "pid": os.getpid()}


    def output_fn(prediction, accept):
        return json.dumps({**prediction, "accept": accept})
"""


def artifact(version: str, broken: bool = False, hang: float = 0) -> bytes:
    files = {
        "model.json": json.dumps({"version": version, "broken": broken, "hang": hang}),
        "code/inference.py": textwrap.dedent(INFERENCE),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Hosting:
    """Clients of one local cloud, and the models, configurations and endpoints a test made
    (deleted when it ends, so no instance outlives its test)."""

    def __init__(self, client):
        self.client = client
        self.sm = client("sagemaker")
        self.runtime = client("sagemaker-runtime")
        self.s3 = client("s3")
        self.endpoints: list[str] = []

    def stage(self, version: str, **kind) -> str:
        if BUCKET not in [b["Name"] for b in self.s3.list_buckets()["Buckets"]]:
            self.s3.create_bucket(Bucket=BUCKET)
        key = f"models/{version}/model.tar.gz"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=artifact(version, **kind))
        return f"s3://{BUCKET}/{key}"

    def model(self, name: str, version: str, **kind) -> str:
        """A model of ``version``; ``kind``: ``broken`` (it does not load), ``hang`` (seconds
        its loading takes)."""
        container = {
            "Image": "local/pytorch-inference",
            "ModelDataUrl": self.stage(version, **kind),
        }
        self.sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
        return name

    def config(self, name: str, model: str, count: int = 1, variant: str = VARIANT) -> str:
        variants = [
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": count,
                "InstanceType": "ml.m5.large",
            }
        ]
        self.sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
        return name

    def endpoint(self, name: str, config: str, wait: bool = True) -> dict:
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
        self.endpoints.append(name)
        return self.wait(name) if wait else {}

    def describe(self, name: str) -> dict:
        return self.sm.describe_endpoint(EndpointName=name)

    def wait(self, name: str, done=None, timeout: float = 30.0) -> dict:
        settled = ("InService", "Failed")
        return wait_for(
            lambda: self.describe(name),
            done or (lambda d: d["EndpointStatus"] in settled),
            timeout,
            poll=0.1,
        )

    def invoke(self, name: str, payload: dict, client=None, **extra) -> dict:
        answer = (client or self.runtime).invoke_endpoint(
            EndpointName=name, Body=json.dumps(payload), ContentType="application/json", **extra
        )
        return {**answer, "Body": json.loads(answer["Body"].read())}

    def cleanup(self) -> None:
        """Delete the test's endpoints once they may be (not while Creating or Updating)."""
        for name in self.endpoints:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    self.sm.delete_endpoint(EndpointName=name)
                except ClientError as exc:
                    if "in-progress" in str(exc):
                        time.sleep(0.1)
                        continue
                break  # deleted, or gone already


def clients(url: str):
    def client(service: str, config: Config | None = None):
        return boto3.client(
            service,
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    return client


@pytest.fixture
def hosting(cloud):
    hosting = Hosting(clients(cloud.url))
    yield hosting
    hosting.cleanup()


def fleet(cloud, name: str, variant: str = VARIANT):
    """The local cloud's own record of an endpoint's serving fleet (its instances' pids)."""
    backend = cloud.service(SageMakerService).endpoints
    return backend.endpoint(REGION, name).fleets[variant]


def error_of(call) -> dict:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response


def test_an_endpoint_serves_boto3_and_the_cli_and_shapes_match(cloud, hosting, tmp_path):
    model = hosting.model("ep-basic-model", "v1")
    config = hosting.config("ep-basic-config", model, count=2)
    described = hosting.endpoint("ep-basic", config)
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    validate_response(hosting.sm, "DescribeEndpoint", described)
    variant = described["ProductionVariants"][0]
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (2, 2)
    for operation, answer in (
        ("DescribeModel", hosting.sm.describe_model(ModelName=model)),
        ("DescribeEndpointConfig", hosting.sm.describe_endpoint_config(EndpointConfigName=config)),
        ("ListEndpoints", hosting.sm.list_endpoints(NameContains="ep-basic")),
        ("ListModels", hosting.sm.list_models(NameContains="ep-basic")),
        ("ListEndpointConfigs", hosting.sm.list_endpoint_configs(NameContains="ep-basic")),
    ):
        validate_response(hosting.sm, operation, answer)
    assert hosting.sm.list_endpoints(NameContains="ep-basic")["Endpoints"][0]["EndpointStatus"] == (
        "InService"
    )

    answer = hosting.invoke("ep-basic", {"echo": "woof"}, Accept="application/json")
    assert answer["Body"]["version"] == "v1" and answer["Body"]["echo"] == "woof"
    assert answer["Body"]["accept"] == "application/json"
    assert answer["ContentType"] == "application/json"
    assert answer["InvokedProductionVariant"] == VARIANT
    # Both instances take requests (least busy first, ties drawn at random).
    pids = {hosting.invoke("ep-basic", {})["Body"]["pid"] for _ in range(30)}
    assert pids == {instance.pid for instance in fleet(cloud, "ep-basic").instances}

    body = tmp_path / "body.json"
    body.write_text(json.dumps({"echo": "from the CLI"}))
    out = tmp_path / "out.json"
    shell = {**os.environ, **control.client_environment(cloud.url)}
    done = aws_cli(
        "sagemaker-runtime",
        "invoke-endpoint",
        "--endpoint-name",
        "ep-basic",
        "--body",
        f"fileb://{body}",
        "--content-type",
        "application/json",
        str(out),
        env=shell,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "ContentType": "application/json",
        "InvokedProductionVariant": VARIANT,
    }
    assert json.loads(out.read_text())["echo"] == "from the CLI"


def test_model_errors_and_endpoints_not_in_service(hosting):
    hosting.endpoint(
        "ep-errors", hosting.config("ep-errors-config", hosting.model("ep-errors-model", "v1"))
    )
    refused = error_of(
        lambda: hosting.runtime.invoke_endpoint(
            EndpointName="ep-errors", Body=b"not json", ContentType="text/plain"
        )
    )
    assert refused["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert refused["Error"]["Code"] == "ModelError"
    assert refused["OriginalStatusCode"] == 415
    assert "unsupported content type text/plain" in refused["OriginalMessage"]
    assert refused["Error"]["Message"].startswith("Received client error (415) from primary with")
    assert refused["LogStreamArn"].endswith(":log-group:/aws/sagemaker/Endpoints/ep-errors")

    crashed = error_of(lambda: hosting.invoke("ep-errors", {"crash": True}))
    assert (crashed["Error"]["Code"], crashed["OriginalStatusCode"]) == ("ModelError", 500)
    assert crashed["Error"]["Message"].startswith("Received server error (500) from primary")
    assert hosting.invoke("ep-errors", {"echo": 1})["Body"]["echo"] == 1  # still serving

    unknown = error_of(lambda: hosting.invoke("ep-nonesuch", {}))
    assert unknown["Error"] == {
        "Code": "ValidationError",
        "Message": "Endpoint ep-nonesuch of account 123456789012 not found.",
    }

    # A model that does not load: Creating (refusing invocations and updates), then Failed.
    broken = hosting.config(
        "ep-broken-config", hosting.model("ep-broken-model", "bad", broken=True)
    )
    hosting.endpoint("ep-broken", broken, wait=False)
    busy = error_of(
        lambda: hosting.sm.update_endpoint(EndpointName="ep-broken", EndpointConfigName=broken)
    )
    assert busy["Error"]["Code"] == "ValidationException"
    assert busy["Error"]["Message"].startswith(
        'Cannot update in-progress endpoint "arn:aws:sagemaker:'
    )
    assert error_of(lambda: hosting.invoke("ep-broken", {}))["Error"]["Code"] == "ValidationError"
    failed = hosting.wait("ep-broken")
    assert failed["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in failed["FailureReason"]
    assert failed["ProductionVariants"][0]["CurrentInstanceCount"] == 0
    validate_response(hosting.sm, "DescribeEndpoint", failed)
    assert error_of(lambda: hosting.invoke("ep-broken", {}))["Error"]["Code"] == "ValidationError"
    hosting.sm.delete_endpoint(EndpointName="ep-broken")
    wait_for(
        lambda: hosting.sm.list_endpoints(NameContains="ep-broken")["Endpoints"],
        lambda endpoints: endpoints == [],
        timeout=10,
        poll=0.1,
    )
    gone = error_of(lambda: hosting.describe("ep-broken"))
    assert gone["Error"]["Message"] == 'Could not find endpoint "ep-broken".'

    missing = error_of(lambda: hosting.sm.describe_model(ModelName="ep-no-model"))
    assert missing["Error"]["Code"] == "ValidationException"
    assert missing["Error"]["Message"].startswith('Could not find model "arn:aws:sagemaker:')
    taken = error_of(lambda: hosting.model("ep-errors-model", "v1"))
    assert taken["Error"]["Message"].startswith('Cannot create already existing model "arn:')


class Traffic:
    """Threads invoking an endpoint without pause (no retries: a failure is a failure), until
    stopped; every answer and error kept in order."""

    def __init__(self, hosting: Hosting, name: str, threads: int = 4):
        self.name = name
        self.answers: list[dict] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        once = Config(retries={"total_max_attempts": 1})
        self.threads = [
            threading.Thread(
                target=self._run, args=(hosting, hosting.client("sagemaker-runtime", once))
            )
            for _ in range(threads)
        ]

    def _run(self, hosting: Hosting, client) -> None:
        while not self.stop.is_set():
            try:
                self.answers.append(
                    hosting.invoke(self.name, {"sleep": 0.02}, client=client)["Body"]
                )
            except Exception as exc:
                self.errors.append(repr(exc))

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def versions(self) -> list[str]:
        return [answer["version"] for answer in self.answers]


def test_updates_move_traffic_without_a_failed_request(cloud, hosting):
    v1 = hosting.config("ep-blue-config", hosting.model("ep-blue-model", "v1"))
    v2 = hosting.config("ep-green-config", hosting.model("ep-green-model", "v2"))
    broken = hosting.config("ep-bad-config", hosting.model("ep-bad-model", "v3", broken=True))
    hosting.endpoint("ep-bluegreen", v1)
    blue_pids = [instance.pid for instance in fleet(cloud, "ep-bluegreen").instances]

    with Traffic(hosting, "ep-bluegreen") as traffic:
        time.sleep(0.3)
        hosting.sm.update_endpoint(EndpointName="ep-bluegreen", EndpointConfigName=v2)
        updating = hosting.describe("ep-bluegreen")
        assert updating["EndpointStatus"] == "Updating"
        assert updating["PendingDeploymentSummary"]["EndpointConfigName"] == v2
        validate_response(hosting.sm, "DescribeEndpoint", updating)
        done = hosting.wait("ep-bluegreen")
        time.sleep(0.3)
    assert traffic.errors == []
    assert done["EndpointStatus"] == "InService" and done["EndpointConfigName"] == v2
    assert "FailureReason" not in done and "PendingDeploymentSummary" not in done
    versions = traffic.versions()
    assert set(versions) == {"v1", "v2"}
    # Traffic moved once: never back to v1 after the first v2 (a few answers in flight at the
    # switch may finish after it; allow one per thread).
    first_v2 = versions.index("v2")
    assert versions[first_v2:].count("v1") <= len(traffic.threads)
    assert versions[-1] == "v2"
    for pid in blue_pids:  # the old fleet drained and stopped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    with Traffic(hosting, "ep-bluegreen") as traffic:
        hosting.sm.update_endpoint(EndpointName="ep-bluegreen", EndpointConfigName=broken)
        kept = hosting.wait(
            "ep-bluegreen", lambda d: d["EndpointStatus"] == "InService" and "FailureReason" in d
        )
        time.sleep(0.2)
    assert traffic.errors == []
    assert set(traffic.versions()) == {"v2"}
    assert kept["EndpointConfigName"] == v2
    assert "did not pass the ping health check" in kept["FailureReason"]
    assert kept["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    validate_response(hosting.sm, "DescribeEndpoint", kept)


def test_a_killed_instance_is_replaced_and_fleets_rescale(cloud, hosting):
    config = hosting.config("ep-heal-config", hosting.model("ep-heal-model", "v1"), count=2)
    hosting.endpoint("ep-heal", config)
    victim = fleet(cloud, "ep-heal").instances[0].pid
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: [i.pid for i in fleet(cloud, "ep-heal").in_service()],
        lambda pids: len(pids) == 2 and victim not in pids,
        timeout=20,
        poll=0.1,
    )
    healed = hosting.describe("ep-heal")
    assert healed["EndpointStatus"] == "InService"
    assert healed["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert hosting.invoke("ep-heal", {"echo": 2})["Body"]["echo"] == 2

    # Scale out with the API, then in with the method the autoscaling controller calls.
    hosting.sm.update_endpoint_weights_and_capacities(
        EndpointName="ep-heal",
        DesiredWeightsAndCapacities=[{"VariantName": VARIANT, "DesiredInstanceCount": 3}],
    )
    scaling = hosting.describe("ep-heal")
    assert scaling["EndpointStatus"] == "Updating"
    assert scaling["ProductionVariants"][0]["DesiredInstanceCount"] == 3
    scaled = hosting.wait("ep-heal")
    assert scaled["ProductionVariants"][0]["CurrentInstanceCount"] == 3
    runner = cloud.service(SageMakerService).hosting
    runner.set_desired_instance_count(REGION, "ep-heal", VARIANT, 1)
    scaled_in = hosting.wait("ep-heal")
    variant = scaled_in["ProductionVariants"][0]
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 1)
    assert len(fleet(cloud, "ep-heal").instances) == 1

    # An update keeps the scaled count when asked to (ops promote-endpoint does).
    runner.set_desired_instance_count(REGION, "ep-heal", VARIANT, 2)
    hosting.wait("ep-heal")
    v2 = hosting.config("ep-heal-v2", hosting.model("ep-heal-model-v2", "v2"), count=1)
    hosting.sm.update_endpoint(
        EndpointName="ep-heal", EndpointConfigName=v2, RetainAllVariantProperties=True
    )
    retained = hosting.wait("ep-heal")
    variant = retained["ProductionVariants"][0]
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (2, 2)
    assert hosting.invoke("ep-heal", {})["Body"]["version"] == "v2"


def test_variants_take_traffic_by_weight_or_by_name(hosting):
    variants = [
        {
            "VariantName": name,
            "ModelName": hosting.model(f"ep-weights-{name.lower()}", version),
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": weight,
        }
        for name, version, weight in (("Blue", "v1", 1.0), ("Green", "v2", 0.0))
    ]
    hosting.sm.create_endpoint_config(EndpointConfigName="ep-weights", ProductionVariants=variants)
    described = hosting.endpoint("ep-weights", "ep-weights")
    assert [(v["VariantName"], v["CurrentWeight"]) for v in described["ProductionVariants"]] == [
        ("Blue", 1.0),
        ("Green", 0.0),
    ]
    answers = [hosting.invoke("ep-weights", {}) for _ in range(10)]
    assert {(a["InvokedProductionVariant"], a["Body"]["version"]) for a in answers} == {
        ("Blue", "v1")
    }
    named = hosting.invoke("ep-weights", {}, TargetVariant="Green")
    assert (named["InvokedProductionVariant"], named["Body"]["version"]) == ("Green", "v2")

    # AWS lets the configuration and models be deleted while the endpoint uses them.
    hosting.sm.delete_endpoint_config(EndpointConfigName="ep-weights")
    hosting.sm.delete_model(ModelName="ep-weights-blue")
    hosting.sm.update_endpoint_weights_and_capacities(
        EndpointName="ep-weights",
        DesiredWeightsAndCapacities=[
            {"VariantName": "Blue", "DesiredWeight": 0.0},
            {"VariantName": "Green", "DesiredWeight": 1.0},
        ],
    )
    hosting.wait("ep-weights")
    answers = [hosting.invoke("ep-weights", {}) for _ in range(10)]
    assert {a["InvokedProductionVariant"] for a in answers} == {"Green"}
    unknown = error_of(
        lambda: hosting.sm.update_endpoint_weights_and_capacities(
            EndpointName="ep-weights",
            DesiredWeightsAndCapacities=[{"VariantName": "Red", "DesiredWeight": 1.0}],
        )
    )
    assert unknown["Error"]["Code"] == "ValidationException"
    assert 'no production variant named "Red"' in unknown["Error"]["Message"]


def test_invocation_metrics_reach_cloudwatch(cloud, hosting):
    hosting.endpoint(
        "ep-metrics", hosting.config("ep-metrics-config", hosting.model("ep-metrics-model", "v1"))
    )
    start = datetime.now(UTC) - timedelta(minutes=1)
    for _ in range(5):
        hosting.invoke("ep-metrics", {})
    with pytest.raises(ClientError):
        hosting.invoke("ep-metrics", {"crash": True})
    cloudwatch = hosting.client("cloudwatch")
    dimensions = [
        {"Name": "EndpointName", "Value": "ep-metrics"},
        {"Name": "VariantName", "Value": VARIANT},
    ]

    def statistic(metric: str, stat: str = "Sum") -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=dimensions,
            StartTime=start,
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=60,
            Statistics=[stat],
        )["Datapoints"]
        return sum(point[stat] for point in points)

    wait_for(lambda: statistic("Invocations"), lambda total: total == 6, timeout=10, poll=0.2)
    assert statistic("InvocationsPerInstance") == pytest.approx(6.0)
    assert statistic("Invocation5XXErrors") == 1
    assert statistic("Invocation4XXErrors") == 0
    assert 0 < statistic("ModelLatency", "Maximum") < 10_000_000  # microseconds
    assert statistic("OverheadLatency", "SampleCount") == 6
    window = cloud.service(SageMakerService).metrics.window(
        REGION, "ep-metrics", VARIANT, time.time() - 60, time.time() + 1
    )
    assert (window.invocations, window.invocations_per_instance) == (6, 6.0)


def test_an_instance_that_never_answers_fails_the_deployment(cloud, hosting):
    runner = cloud.service(SageMakerService).hosting
    default = runner.default_startup_timeout
    # ContainerStartupHealthCheckTimeoutInSeconds is at least 60 (the service model); the
    # runner's default stands in for it, so the test waits 1 s rather than a minute.
    runner.default_startup_timeout = 1.0
    try:
        model = hosting.model("ep-hang-model", "slow", hang=60)
        hosting.endpoint("ep-hang", hosting.config("ep-hang-config", model), wait=False)
        started = time.monotonic()
        failed = hosting.wait("ep-hang", timeout=15)
    finally:
        runner.default_startup_timeout = default
    assert failed["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in failed["FailureReason"]
    assert time.monotonic() - started < 10


def test_endpoints_configs_and_models_survive_a_restart(tmp_path):
    cloud = CloudProcess(tmp_path).start()
    try:
        hosting = Hosting(clients(cloud.url))
        hosting.endpoint(
            "ep-kept", hosting.config("ep-kept-config", hosting.model("ep-kept-model", "v1"))
        )
        assert hosting.invoke("ep-kept", {})["Body"]["version"] == "v1"
        cloud.stop()

        cloud.start()
        hosting = Hosting(clients(cloud.url))
        assert hosting.describe("ep-kept")["EndpointStatus"] in ("SystemUpdating", "InService")
        back = hosting.wait("ep-kept")
        assert back["EndpointStatus"] == "InService", back.get("FailureReason")
        assert back["EndpointConfigName"] == "ep-kept-config"
        assert back["ProductionVariants"][0]["CurrentInstanceCount"] == 1
        assert hosting.invoke("ep-kept", {})["Body"]["version"] == "v1"
        assert hosting.sm.describe_model(ModelName="ep-kept-model")["ModelName"] == "ep-kept-model"
        listed = hosting.sm.list_endpoint_configs()["EndpointConfigs"]
        assert [c["EndpointConfigName"] for c in listed] == ["ep-kept-config"]

        hosting.sm.delete_endpoint(EndpointName="ep-kept")
        hosting.sm.delete_model(ModelName="ep-kept-model")
        wait_for(
            lambda: hosting.sm.list_endpoints()["Endpoints"],
            lambda e: e == [],
            timeout=15,
            poll=0.1,
        )
        cloud.stop()
        cloud.start()
        hosting = Hosting(clients(cloud.url))
        assert hosting.sm.list_endpoints()["Endpoints"] == []
        assert hosting.sm.list_models()["Models"] == []
        cloud.stop()
    finally:
        if cloud.process is not None and cloud.process.poll() is None:
            cloud.kill()
