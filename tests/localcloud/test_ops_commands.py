"""`ops local ...` and `ops train` as a user runs them."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from loadtest.payloads import ImageServer
from ops.cli import app
from ops.config import endpoint_settings, lambda_settings
from ops.localcloud import bootstrap, control
from ops.localcloud.ssm.host import TRAINING_HOST_ID
from ops.promotion import smoke_image
from tests.localcloud.conftest import run_ops as ops
from tests.localcloud.test_ssm import ssm_client


def test_local_up_status_env_down(tmp_path):
    env = {**os.environ, "DOGOPS_HOME": str(tmp_path)}
    assert ops("local", "status", env=env).returncode == 1
    up = ops("local", "up", "--detach", "--time-scale", "5", env=env)
    try:
        assert up.returncode == 0, up.stderr
        status = json.loads(ops("local", "status", "--json", env=env).stdout)
        assert status["running"] is True
        assert status["url"].startswith("http://127.0.0.1:")
        assert status["time_scale"] == 5
        assert "SageMaker.CreateHyperParameterTuningJob" in status["intercepted"]
        exports = ops("local", "env", env=env).stdout
        assert f"export AWS_ENDPOINT_URL={status['url']}" in exports
        # A second `up` finds the running one instead of starting another.
        again = ops("local", "up", "--detach", env=env)
        assert status["url"] in again.stdout
        # The exported settings are all a plain boto3 script needs.
        client_env = {
            **env,
            **dict(line.removeprefix("export ").split("=", 1) for line in exports.splitlines()),
        }
        script = "import boto3; print(boto3.client('sts').get_caller_identity()['Account'])"
        who = subprocess.run(
            [sys.executable, "-c", script],
            env=client_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert who.stdout.strip() == "123456789012", who.stderr
    finally:
        down = ops("local", "down", env=env)
    assert down.stdout.strip() == "stopped"
    assert ops("local", "status", env=env).returncode == 1
    assert not (tmp_path / "localcloud.json").exists()


def test_train_without_a_local_cloud_says_how_to_start_one(tmp_path, monkeypatch):
    monkeypatch.setenv("DOGOPS_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["train", "--skip-tuning"])
    assert result.exit_code == 1
    assert "ops local up --detach" in result.output


CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


def remove_endpoint(cloud, settings) -> None:
    """The endpoint (its model servers stop) and its scalable target, gone."""
    session = boto3.Session(**CREDENTIALS)
    with contextlib.suppress(ClientError):
        session.client(
            "application-autoscaling", endpoint_url=cloud.url
        ).deregister_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=settings.resource_id,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        )
    with contextlib.suppress(ClientError):
        session.client("sagemaker", endpoint_url=cloud.url).delete_endpoint(
            EndpointName=settings.endpoint_name
        )


def train_json(data, *args: str) -> dict:
    """`ops train --data DATA ARGS --json`, which must succeed; its JSON result."""
    result = CliRunner().invoke(app, ["train", "--data", str(data), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def registered(cloud, tmp_path, monkeypatch):
    """Make the session's in-process local cloud the one `ops` finds."""
    monkeypatch.setenv("DOGOPS_HOME", str(tmp_path))
    control.register(cloud.url, os.getpid())
    return tmp_path


@pytest.mark.slow
def test_ops_train_tunes_then_trains_and_records(registered, synth_data, cloud, monkeypatch):
    # What `ops local up` does first: create what terraform/ declares (bucket, roles, the
    # Lambda function with its alias, reserved and provisioned concurrency).
    outputs = bootstrap.run(cloud.url, home=registered).outputs
    bucket = outputs["s3_bucket_name"]
    flags = "--max-jobs 2 --max-parallel 2 --epochs 2 --image-size 32 --strategy Random --seed 5"
    document = train_json(synth_data, *flags.split())
    assert document["target"] == "local"
    assert len(document["trials"]) == 2
    objectives = [t["objective"] for t in document["trials"]]
    assert document["best_objective"] == min(objectives)
    best_trial = next(t for t in document["trials"] if t["objective"] == min(objectives))
    assert document["best_hyperparameters"] == best_trial["hyperparameters"]
    assert document["model_artifact"].startswith(f"s3://{bucket}/models/dogops-train-")
    assert "Test Loss" in document["metrics"]
    recorded = json.loads((registered / "trained" / "local.json").read_text())
    assert recorded["model_artifact"] == document["model_artifact"]

    # The mission's chain goes on: `ops promote-endpoint` puts the recorded model on the
    # endpoint, which answers the original project's request, {"url": ...}, and an image body.
    # The image is served on loopback, which the model servers refuse unless allowed (tests only).
    monkeypatch.setenv("INFERENCE_URL_ALLOW_NETWORKS", "127.0.0.0/8")
    settings = endpoint_settings()
    runtime = boto3.Session(**CREDENTIALS).client("sagemaker-runtime", endpoint_url=cloud.url)
    with ImageServer(smoke_image()) as images:
        image_url = images.url
        try:
            promoted = CliRunner().invoke(app, ["promote-endpoint", "--poll", "0.2", "--json"])
            assert promoted.exit_code == 0, promoted.output
            assert json.loads(promoted.stdout)["model_data"] == recorded["model_artifact"]
            for body, content_type in (
                (json.dumps({"url": image_url}).encode(), "application/json"),
                (smoke_image(), "image/jpeg"),
            ):
                answer = runtime.invoke_endpoint(
                    EndpointName=settings.endpoint_name, ContentType=content_type, Body=body
                )
                predictions = json.loads(answer["Body"].read())["predictions"]
                assert predictions and {"label", "probability"} <= set(predictions[0])
            # And the Lambda function in front of it, invoked by its alias as the load test
            # does, answers the original request with the predicted breeds.
            function = lambda_settings()
            lam = boto3.Session(**CREDENTIALS).client("lambda", endpoint_url=cloud.url)
            answer = lam.invoke(
                FunctionName=function.function_name,
                Qualifier=function.alias_name,
                Payload=json.dumps({"url": image_url, "top_k": 3}).encode(),
            )
            assert "FunctionError" not in answer
            response = json.loads(answer["Payload"].read())
            assert response["statusCode"] == 200, response
            predictions = json.loads(response["body"])["predictions"]
            assert len(predictions) == 3 and {"label", "probability"} <= set(predictions[0])
        finally:
            remove_endpoint(cloud, settings)


@pytest.mark.slow
def test_ops_train_two_instances_distributed(registered, synth_data):
    document = train_json(
        synth_data, "--skip-tuning", "--instance-count", "2", "--epochs", "1", "--image-size", "32"
    )
    assert document["instance_count"] == 2
    assert document["tuning_job"] is None
    assert document["best_hyperparameters"] == {
        "learning-rate": "0.00834462420525608",
        "batch-size": "32",
    }


def ssm_invocation(cloud, comment: str) -> tuple[dict, dict]:
    """The SSM command with ``comment`` on the local training host: (its ListCommandInvocations
    row with details, its GetCommandInvocation)."""
    ssm = ssm_client(cloud.url)
    [row] = [
        row
        for row in ssm.list_command_invocations(Details=True)["CommandInvocations"]
        if row["Comment"] == comment
    ]
    return row, ssm.get_command_invocation(CommandId=row["CommandId"], InstanceId=row["InstanceId"])


@pytest.mark.slow
def test_ops_train_on_ec2_runs_through_ssm_on_the_local_training_host(
    registered, synth_data, cloud
):
    document = train_json(synth_data, "--on", "ec2", "--epochs", "1", "--image-size", "32")
    name = document["training_job"]
    artifact = f"s3://dogops-local/models/{name}/output/model.tar.gz"  # as a SageMaker job's
    assert document["model_artifact"] == artifact
    assert "Test Loss" in document["metrics"]

    row, invocation = ssm_invocation(cloud, f"dogops train {name}")
    assert row["InstanceId"] == TRAINING_HOST_ID
    assert row["DocumentName"] == "AWS-RunShellScript"
    assert (invocation["Status"], invocation["ResponseCode"]) == ("Success", 0)
    output = invocation["StandardOutputContent"]
    assert f"Test Loss: {document['metrics']['Test Loss']:.6f}" in output
    assert output.rstrip().endswith(f"model uploaded to {artifact}")
    # It ran on the host folder prepared as the user data prepares the real host.
    install_dir = registered / "hosts" / TRAINING_HOST_ID / "opt" / "dogops"
    assert (install_dir / "runs" / name / "model.tar.gz").is_file()
    assert (install_dir / ".venv" / "bin" / "python").exists()

    # `ops serve` takes the printed s3:// URI and serves it like the SageMaker container.
    server = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "serve", document["model_artifact"], "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        assert httpx.get(url + "/ping", timeout=30).status_code == 200
        image = next((synth_data / "test").rglob("*.jpg")).read_bytes()
        answer = httpx.post(
            url + "/invocations", content=image, headers={"Content-Type": "image/jpeg"}, timeout=30
        )
        assert answer.status_code == 200
        assert len(answer.json()["predictions"]) >= 1
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ops_train_on_ec2_reports_the_failed_step(registered, cloud):
    missing = "s3://dogops-local/data/not-uploaded"
    result = CliRunner().invoke(app, ["train", "--on", "ec2", "--data-uri", missing, "--json"])
    assert result.exit_code == 1
    assert "ended Failed (exit 1;" in result.output
    assert f"no objects under {missing}" in result.output


def test_bad_data_folder_is_a_clear_error(registered, tmp_path):
    (tmp_path / "nothing").mkdir()
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "error:" in result.output and "nothing" in result.output


def test_local_up_in_the_foreground_serves_until_sigterm(tmp_path):
    env = {**os.environ, "DOGOPS_HOME": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "local", "up", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(server.stdout.readline())
        assert ready["pid"] == server.pid
        status = json.loads(ops("local", "status", "--json", env=env).stdout)
        assert status["url"] == ready["url"]
        again = ops("local", "up", env=env)
        assert again.returncode == 1
        assert again.stderr.startswith("error: a local cloud is already running")
    finally:
        server.terminate()
        server.wait(timeout=120)
    assert not (tmp_path / "localcloud.json").exists()  # it removed its own state file
