"""The aws path of `ops train` against moto alone: the requests it sends are the ones AWS needs.

moto records SageMaker jobs (it runs nothing and reports them Completed at once), so this checks
what goes over the wire: instance types, ranges, objective, metric definitions, role, paths."""

from __future__ import annotations

import io
import json
import re
import tarfile

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from typer.testing import CliRunner

from ops import target as target_module
from ops.cli import app
from ops.metrics import METRIC_DEFINITIONS

BUCKET = "dogops-dev-artifacts-1234"


@pytest.fixture
def aws(tmp_path, monkeypatch):
    """moto as the AWS account, Terraform outputs in a file, and every SageMaker call recorded."""
    calls: list[tuple[str, dict]] = []
    real_session = boto3.Session

    def record(model, params, **_):
        calls.append((model.name, params))

    def list_trials(**_):
        # moto has no ListTrainingJobsForHyperParameterTuningJob; answer it as AWS would for a
        # finished job whose trials we do not look at here.
        return AWSResponse("https://sagemaker", 200, {}, None), {"TrainingJobSummaries": []}

    def session(*args, **kwargs):
        created = real_session(*args, **kwargs)
        created.events.register(
            "provide-client-params", lambda params, model, **kw: record(model, params)
        )
        created.events.register(
            "before-call.sagemaker.ListTrainingJobsForHyperParameterTuningJob", list_trials
        )
        return created

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        role = boto3.client("iam").create_role(
            RoleName="dogops-dev-sagemaker", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        outputs = tmp_path / "outputs.json"
        outputs.write_text(
            json.dumps(
                {
                    "s3_bucket_name": {"value": BUCKET, "type": "string", "sensitive": False},
                    "sagemaker_role_arn": {"value": role, "type": "string", "sensitive": False},
                    "region": {"value": "us-east-1", "type": "string", "sensitive": False},
                }
            )
        )
        monkeypatch.setattr(target_module.boto3, "Session", session)
        monkeypatch.setenv("DOGOPS_HOME", str(tmp_path / "home"))
        yield outputs, role, calls, s3


def sent(calls, operation: str) -> dict:
    matching = [params for name, params in calls if name == operation]
    assert len(matching) == 1, [name for name, _ in calls]
    return matching[0]


def test_aws_train_sends_the_tuning_and_training_requests(aws, synth_data):
    outputs, role, calls, s3 = aws
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--target",
            "aws",
            "--outputs",
            str(outputs),
            "--data",
            str(synth_data),
            "--instance-count",
            "4",
            "--max-jobs",
            "4",
            "--max-parallel",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    data_uri = document["data_uri"]
    # The folder's name, then a digest of its content (tests/ops/test_staging.py).
    assert re.fullmatch(rf"s3://{BUCKET}/data/{synth_data.name}-[0-9a-f]{{12}}", data_uri)

    tuning = sent(calls, "CreateHyperParameterTuningJob")
    config = tuning["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize",
        "MetricName": "Test Loss",
    }
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2}
    assert config["ParameterRanges"]["ContinuousParameterRanges"] == [
        {
            "Name": "learning-rate",
            "MinValue": "0.001",
            "MaxValue": "0.1",
            "ScalingType": "Logarithmic",
        }
    ]
    assert config["ParameterRanges"]["CategoricalParameterRanges"] == [
        {
            "Name": "batch-size",
            "Values": ["32", "64", "128", "256", "512"],
        }
    ]
    definition = tuning["TrainingJobDefinition"]
    assert definition["RoleArn"] == role
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert definition["AlgorithmSpecification"]["TrainingImage"] == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:"
        "2.8.0-cpu-py312-ubuntu22.04-sagemaker"
    )
    assert definition["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert definition["ResourceConfig"]["InstanceCount"] == 1
    assert definition["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/models"}
    assert definition["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == data_uri
    static = definition["StaticHyperParameters"]
    assert json.loads(static["sagemaker_program"]) == "ml/train.py"
    assert {k: static[k] for k in ("arch", "weights", "image-size")} == {
        "arch": "resnet50",
        "weights": "imagenet",
        "image-size": "224",
    }
    assert "CheckpointConfig" not in definition  # trials must not resume each other

    # The source tarball the toolkit will fetch holds the entry point.
    bucket, key = json.loads(static["sagemaker_submit_directory"])[5:].split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert {"ml/train.py", "ml/inference.py", "ml/data.py"} <= set(tar.getnames())

    training = sent(calls, "CreateTrainingJob")
    assert training["RoleArn"] == role
    assert training["ResourceConfig"]["InstanceType"] == "ml.m5.2xlarge"
    assert training["ResourceConfig"]["InstanceCount"] == 4
    assert training["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    assert training["HyperParameters"]["resume"] == "auto"
    assert training["CheckpointConfig"]["S3Uri"].startswith(f"s3://{BUCKET}/checkpoints/")
    assert training["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/models"}
    assert training["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS

    assert document["target"] == "aws"
    # The data really went to the bucket.
    listed = s3.list_objects_v2(
        Bucket=BUCKET, Prefix=f"{data_uri[len(f's3://{BUCKET}/') :]}/train/"
    )
    assert listed["KeyCount"] > 0


# The training host as Terraform's outputs name it (install_dir's default, its venv).
HOST = {
    "instance_id": "i-0123456789abcdef0",
    "install_dir": "/opt/dogops",
    "venv_dir": "/opt/dogops/.venv",
}


def with_training_host(outputs, **host: str) -> None:
    """Add the training host's Terraform outputs (terraform/envs/dev/outputs.tf) to the file."""
    document = json.loads(outputs.read_text())
    for name, value in host.items():
        document[f"training_host_{name}"] = {"value": value, "type": "string"}
    outputs.write_text(json.dumps(document))


def train_on_ec2(outputs, synth_data):
    return CliRunner().invoke(
        app,
        [
            "train",
            "--target",
            "aws",
            "--on",
            "ec2",
            "--outputs",
            str(outputs),
            "--data",
            str(synth_data),
            "--learning-rate",
            "0.02",
            "--json",
        ],
    )


def test_aws_train_on_ec2_runs_the_script_on_the_training_host(aws, synth_data):
    outputs, _, calls, _ = aws
    with_training_host(outputs, **HOST)
    result = train_on_ec2(outputs, synth_data)
    assert result.exit_code == 0, result.output
    command = sent(calls, "SendCommand")
    assert command["InstanceIds"] == [HOST["instance_id"]]
    assert command["DocumentName"] == "AWS-RunShellScript"
    lines = command["Parameters"]["commands"]
    artifact = json.loads(result.stdout)["model_artifact"]
    name = artifact.split("/")[-3]
    work = f"/opt/dogops/runs/{name}"
    python = "/opt/dogops/.venv/bin/python"  # the project's venv, as the user data makes it
    # POSIX sh for dash (AWS-RunShellScript's /bin/sh on Ubuntu): no pipefail, no bashisms.
    assert lines[0] == "set -eu"
    assert "cd /opt/dogops" in lines  # where the user data checks the project out
    data_uri = json.loads(result.stdout)["data_uri"]
    assert data_uri.startswith(f"s3://{BUCKET}/data/{synth_data.name}-")
    assert f"{python} -m ops.ec2 fetch-data {data_uri} {work}/data" in lines
    [train] = [line for line in lines if " -m ml.train " in line]
    assert train.startswith(f"{python} -m ml.train --data {work}/data --model-dir {work}/model ")
    assert "--learning-rate 0.02 " in train and "--batch-size 32" in train
    assert "--arch resnet50 --weights imagenet --image-size 224" in train
    assert artifact == f"s3://{BUCKET}/models/{name}/output/model.tar.gz"
    assert lines[-1] == f"{python} -m ops.ec2 put-model {work}/model {artifact}"
    assert not [name for name, _ in calls if name.startswith("Create")]  # no SageMaker job


def test_aws_train_on_ec2_needs_the_training_host_outputs(aws, synth_data):
    outputs, *_ = aws
    with_training_host(outputs, instance_id=HOST["instance_id"])
    result = train_on_ec2(outputs, synth_data)
    assert result.exit_code == 1
    assert "training_host_install_dir, training_host_venv_dir" in result.output


def test_aws_target_needs_outputs(aws, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--target",
            "aws",
            "--outputs",
            str(tmp_path / "missing.json"),
            "--data-uri",
            "s3://x/y",
        ],
    )
    assert result.exit_code == 1
    assert "cannot read Terraform outputs" in result.output


def test_aws_target_needs_data(aws):
    outputs, *_ = aws
    result = CliRunner().invoke(app, ["train", "--target", "aws", "--outputs", str(outputs)])
    assert result.exit_code == 1
    assert "--data" in result.output


@pytest.mark.parametrize(
    ("on", "event", "message"),
    [
        ("sagemaker", "tuning", "keeps running; stop it with `aws sagemaker stop-hyper"),
        ("ec2", "ec2-status", f"keeps running on {HOST['instance_id']}; cancel it with `aws ssm"),
    ],
)
def test_ctrl_c_while_waiting_says_the_work_keeps_running(aws, synth_data, on, event, message):
    from ops import training
    from ops.errors import OpsError
    from ops.target import resolve, train_defaults

    outputs, *_ = aws
    with_training_host(outputs, **HOST)

    def interrupt(name: str, info: dict) -> None:
        if name == event:
            raise KeyboardInterrupt

    plan = training.TrainPlan(data=synth_data, profile=train_defaults("aws").profile)
    run = training.train_on_ec2 if on == "ec2" else training.train
    with pytest.raises(OpsError, match=message):
        run(resolve("aws", outputs), plan, progress=interrupt)
