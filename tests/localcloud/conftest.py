"""A local cloud per test session (in this process, on a free loopback port), with a bucket, a
small synthetic data set and the training code already uploaded, as `ops train` would."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import textwrap
import time
from dataclasses import dataclass

import boto3
import pytest
from botocore.exceptions import ClientError

from ops.localcloud.app import LocalCloud
from ops.localcloud.sagemaker import SageMakerService
from ops.s3 import upload_tree
from ops.synth import synthesize
from ops.training import ENTRY_POINT, source_tarball

BUCKET = "dogops-test"
ROLE = "arn:aws:iam::123456789012:role/dogops-sagemaker-test"
# Seconds per epoch on 2 cores: 3 classes, 32 px, resnet18 with random weights.
TINY = {"arch": "resnet18", "weights": "none", "image-size": "32", "batch-size": "8"}


@dataclass
class Staged:
    cloud: LocalCloud
    data_uri: str
    source_uri: str

    def client(self, service: str):
        return self.cloud_client(service)

    def cloud_client(self, service: str, config=None):
        return boto3.client(
            service,
            endpoint_url=self.cloud.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    def toolkit_hyperparameters(self, **extra: str) -> dict[str, str]:
        return {
            "sagemaker_program": json.dumps(ENTRY_POINT),
            "sagemaker_submit_directory": json.dumps(self.source_uri),
            **TINY,
            **extra,
        }

    def job_request(self, name: str, instance_count: int = 1, **hyperparameters: str) -> dict:
        from ops.metrics import METRIC_DEFINITIONS

        request = training_request(
            name,
            self.toolkit_hyperparameters(**hyperparameters),
            METRIC_DEFINITIONS,
            instance_count,
        )
        source = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.data_uri}}
        request["InputDataConfig"] = [{"ChannelName": "training", "DataSource": source}]
        return request


def training_request(
    name: str, hyperparameters: dict, metric_definitions: list, instance_count: int = 1
) -> dict:
    """A CreateTrainingJob request without input channels."""
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": "local/pytorch-training",
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions,
        },
        "RoleArn": ROLE,
        "HyperParameters": hyperparameters,
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": instance_count,
            "VolumeSizeInGB": 10,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 900},
    }


def script_job(s3, name: str, script: str, instance_count: int = 1, metrics=()) -> dict:
    """A CreateTrainingJob request that runs ``script`` (Python source) as the entry point: its
    source tarball is uploaded to the test bucket, which must exist. No data channel."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        body = textwrap.dedent(script).encode()
        info = tarfile.TarInfo("entry.py")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    key = f"code/{name}/sourcedir.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    hyperparameters = {
        "sagemaker_program": json.dumps("entry.py"),
        "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/{key}"),
    }
    definitions = [{"Name": n, "Regex": r} for n, r in metrics]
    return training_request(name, hyperparameters, definitions, instance_count)


def script_tuning_request(
    s3, name: str, script: str, ranges: dict, jobs: int, parallel: int, static=None, **definition
) -> dict:
    """A CreateHyperParameterTuningJob request (Random) whose trials run ``script`` and minimise
    the ``loss: <float>`` it prints; ``static`` adds hyperparameters, ``definition`` fields of
    the training job definition."""
    job = script_job(s3, name, script, metrics=[("loss", r"loss: ([0-9.]+)")])
    del job["TrainingJobName"]
    hyperparameters = {**job.pop("HyperParameters"), **(static or {})}
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": jobs,
                "MaxParallelTrainingJobs": parallel,
            },
            "ParameterRanges": ranges,
        },
        "TrainingJobDefinition": {**job, **definition, "StaticHyperParameters": hyperparameters},
    }


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    cloud = LocalCloud(tmp_path_factory.mktemp("localcloud")).start()
    yield cloud
    cloud.stop()


def training_record(cloud: LocalCloud, name: str):
    """The local cloud's own record of a training job (its instances are ``children``)."""
    return cloud.service(SageMakerService).backend.training_job("us-east-1", name)


@pytest.fixture(scope="session")
def staged(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Staged:
    data = tmp_path_factory.mktemp("tiny")
    synthesize(data, classes=3, per_class=8, size=48, seed=1)
    staged = Staged(cloud, f"s3://{BUCKET}/data/tiny", f"s3://{BUCKET}/code/test/sourcedir.tar.gz")
    s3 = staged.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    upload_tree(data, staged.data_uri, client=s3)
    s3.put_object(Bucket=BUCKET, Key="code/test/sourcedir.tar.gz", Body=source_tarball())
    return staged


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, cloud: LocalCloud) -> str:
    """Point every boto3 client of the test at the local cloud (as `ops local env` does)."""
    for key, value in cloud.environment().items():
        monkeypatch.setenv(key, value)
    return cloud.url


def run_ops(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    """The `ops` command in a child process (`python -m ops.cli`), as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(describe, done, timeout: float = 300.0, poll: float = 0.5) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = describe()
        except ClientError:
            result = None
        if result is not None and done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last: {result}")
        time.sleep(poll)


def wait_training(sm, name: str, timeout: float = 300.0) -> dict:
    return wait_for(
        lambda: sm.describe_training_job(TrainingJobName=name),
        lambda d: d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"),
        timeout,
    )


def validate_response(client, operation: str, response: dict) -> None:
    """The parsed response satisfies the operation's output shape in botocore's service model
    (required members present, types right), as a strict SDK (v3's pydantic models) needs."""
    from botocore.validate import ParamValidator

    shape = client.meta.service_model.operation_model(operation).output_shape
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    report = ParamValidator().validate(body, shape)
    assert not report.has_errors(), report.generate_report()


def aws_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The AWS CLI (`awscli`, a test dependency) in a child process, as a user runs it after
    `eval "$(ops local env)"`: ``env`` is that environment, output is JSON, and the CLI keeps
    its default retries, so a server error would show as "reached max retries" on stderr."""
    return subprocess.run(
        [sys.executable, "-m", "awscli", *args, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
