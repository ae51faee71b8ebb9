"""SageMaker training jobs in the local cloud, through boto3 as production code calls them."""

from __future__ import annotations

import io
import re
import tarfile
import time

import pytest
from botocore.exceptions import ClientError

from ops.metrics import parse_metrics
from tests.localcloud.conftest import (
    BUCKET,
    training_record,
    validate_response,
    wait_for,
    wait_training,
)

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def log_text(logs, job: str) -> dict[str, str]:
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=job + "/")
    texts = {}
    for stream in streams["logStreams"]:
        events = logs.get_log_events(
            logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"], startFromHead=True
        )["events"]
        texts[stream["logStreamName"]] = "\n".join(e["message"] for e in events)
    return texts


@pytest.mark.slow
def test_job_trains_logs_metrics_and_uploads_the_model(staged):
    sm, logs, s3 = staged.client("sagemaker"), staged.client("logs"), staged.client("s3")
    created = sm.create_training_job(**staged.job_request("single-1", epochs="2"))
    assert created["TrainingJobArn"].endswith(":training-job/single-1")
    first = sm.describe_training_job(TrainingJobName="single-1")
    assert first["TrainingJobStatus"] == "InProgress"
    validate_response(sm, "DescribeTrainingJob", first)

    job = wait_training(sm, "single-1")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    validate_response(sm, "DescribeTrainingJob", job)
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert job["TrainingTimeInSeconds"] >= 1

    # Output went to CloudWatch Logs under SageMaker's stream names; metrics came from it.
    texts = log_text(logs, "single-1")
    assert len(texts) == 1
    ((stream, text),) = texts.items()
    assert re.fullmatch(r"single-1/algo-1-\d+", stream)
    from_logs = {name: values[-1] for name, values in parse_metrics(text).items()}
    reported = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert set(reported) == {
        "Train Loss",
        "Validation Loss",
        "Validation Accuracy",
        "Test Loss",
        "Test Accuracy",
    }
    assert reported == pytest.approx(from_logs)

    # The artifact is the self-contained model folder, where SageMaker puts it.
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{BUCKET}/models/single-1/output/model.tar.gz"
    body = s3.get_object(Bucket=BUCKET, Key="models/single-1/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        names = set(tar.getnames())
    assert {"model.pth", "model_config.json", "code/inference.py"} <= names

    listed = sm.list_training_jobs(NameContains="single-1")
    validate_response(sm, "ListTrainingJobs", listed)
    assert [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]] == ["single-1"]


@pytest.mark.slow
def test_two_instances_train_one_data_parallel_model(staged):
    sm, logs = staged.client("sagemaker"), staged.client("logs")
    request = staged.job_request(
        "ddp-1", instance_count=2, epochs="1", sagemaker_torch_distributed_enabled="true"
    )
    sm.create_training_job(**request)
    job = wait_training(sm, "ddp-1")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    texts = log_text(logs, "ddp-1")
    assert sorted(re.sub(r"-\d+$", "", s) for s in texts) == ["ddp-1/algo-1", "ddp-1/algo-2"]
    algo1 = next(t for s, t in texts.items() if "/algo-1-" in s)
    algo2 = next(t for s, t in texts.items() if "/algo-2-" in s)
    assert "world_size=2" in algo1  # one process group across both instances
    assert "Test Loss:" in algo1 and "Test Loss:" not in algo2  # only rank 0 reports


def test_failing_script_fails_the_job_with_the_error_tail(staged):
    sm = staged.client("sagemaker")
    sm.create_training_job(**staged.job_request("broken-1", arch="resnet9000"))
    job = wait_training(sm, "broken-1", timeout=120)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: ExecuteUserScriptError: ExitCode 2")
    assert "invalid choice: 'resnet9000'" in job["FailureReason"]
    validate_response(sm, "DescribeTrainingJob", job)


def test_stop_training_job_stops_the_process(staged, cloud):
    sm = staged.client("sagemaker")
    sm.create_training_job(**staged.job_request("stop-1", epochs="500"))
    wait_for(
        lambda: sm.describe_training_job(TrainingJobName="stop-1"),
        lambda d: d["SecondaryStatus"] == "Training",
        timeout=60,
    )
    record = training_record(cloud, "stop-1")
    wait_for(lambda: record.children or None, bool, timeout=30)
    time.sleep(1.0)
    sm.stop_training_job(TrainingJobName="stop-1")
    job = wait_training(sm, "stop-1", timeout=60)
    assert job["TrainingJobStatus"] == "Stopped"
    assert not any(child.running() for child in record.children)
    with pytest.raises(ClientError, match="not in progress"):
        sm.stop_training_job(TrainingJobName="stop-1")


def test_bad_requests_get_aws_errors(staged):
    sm = staged.client("sagemaker")
    with pytest.raises(ClientError) as missing:
        sm.describe_training_job(TrainingJobName="no-such-job")
    assert missing.value.response["Error"]["Code"] == "ValidationException"

    request = staged.job_request("dup-1", arch="resnet9000")
    sm.create_training_job(**request)
    with pytest.raises(ClientError) as duplicate:
        sm.create_training_job(**request)
    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"

    empty = staged.job_request("empty-channel-1")
    empty["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{BUCKET}/nothing"
    sm.create_training_job(**empty)
    job = wait_training(sm, "empty-channel-1", timeout=60)
    assert job["TrainingJobStatus"] == "Failed"
    assert "no objects under" in job["FailureReason"]


def test_requests_not_intercepted_reach_moto(staged):
    # S3 and IAM answered by moto behind the same front door.
    iam = staged.client("iam")
    role = iam.create_role(RoleName="passthrough", AssumeRolePolicyDocument="{}")["Role"]
    assert iam.get_role(RoleName="passthrough")["Role"]["Arn"] == role["Arn"]
    head = staged.client("s3").head_object(Bucket=BUCKET, Key="code/test/sourcedir.tar.gz")
    assert head["ContentLength"] > 1000


def test_policy_simulator_allows_everything_because_nothing_is_enforced(staged):
    iam = staged.client("iam")
    role = iam.create_role(RoleName="simulated", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    answer = iam.simulate_principal_policy(
        PolicySourceArn=role,
        ActionNames=["s3:PutObject", "sagemaker:CreateTrainingJob"],
        ResourceArns=[f"arn:aws:s3:::{BUCKET}/*"],
    )
    validate_response(iam, "SimulatePrincipalPolicy", answer)
    assert [(r["EvalActionName"], r["EvalDecision"]) for r in answer["EvaluationResults"]] == [
        ("s3:PutObject", "allowed"),
        ("sagemaker:CreateTrainingJob", "allowed"),
    ]
