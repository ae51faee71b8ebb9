"""The AWS CLI, a client nobody here wrote, against the local cloud: errors, shapes, paging, IAM
and S3 as it sees them on AWS. Each call is a child process with the environment
`ops local env` gives a shell."""

from __future__ import annotations

import json
import os

import pytest

from ops.localcloud import control
from ops.localcloud.sagemaker import SageMakerService
from tests.localcloud.conftest import (
    BUCKET,
    aws_cli,
    script_job,
    validate_response,
    wait_training,
)
from tests.localcloud.test_job_lifecycle import (
    SAVES_ON_SIGTERM,
    tarball_names,
    wait_until_ready,
)

# What the CLI prints for an error the service answered, after its retries if any.
LIST_ERROR = "An error occurred (ValidationException) when calling the ListTrainingJobs operation"


@pytest.fixture
def shell(cloud) -> dict[str, str]:
    return {**os.environ, **control.client_environment(cloud.url)}


def assert_refused_at_once(done, message: str, *details: str) -> None:
    """The CLI failed (awscli v1 exits 255 for any error) with the service's ``message`` on its
    first attempt: a ValidationException is not retried, a 500 would have been."""
    assert done.returncode == 255, done.stdout
    assert message in done.stderr, done.stderr
    assert "reached max retries" not in done.stderr
    for detail in details:
        assert detail in done.stderr, done.stderr


def test_list_training_jobs_refuses_a_bad_page_size_or_token(shell, tmp_path):
    done = aws_cli("sagemaker", "list-training-jobs", "--next-token", "garbage", env=shell)
    assert_refused_at_once(done, LIST_ERROR)
    # The CLI checks MaxResults' range itself before sending; what AWS answers is what the local
    # cloud imitates, so turn that check off as a user can in the CLI's config file.
    config = tmp_path / "aws-config"
    config.write_text("[default]\nparameter_validation = false\n")
    unchecked = {**shell, "AWS_CONFIG_FILE": str(config)}
    for value, bound in (("0", "greater than or equal to 1"), ("101", "less than or equal to 100")):
        done = aws_cli("sagemaker", "list-training-jobs", "--max-results", value, env=unchecked)
        assert_refused_at_once(done, LIST_ERROR, f"Value '{value}' at 'maxResults'", bound)


def test_create_training_job_refuses_a_malformed_role_arn(shell):
    # Long enough for the CLI's own length check; the account is not 12 digits.
    role = "arn:aws:iam::12345:role/dogops-local-execution"
    done = aws_cli(
        "sagemaker",
        "create-training-job",
        "--training-job-name",
        "cli-bad-role",
        "--role-arn",
        role,
        "--algorithm-specification",
        "TrainingImage=local/pytorch-training,TrainingInputMode=File",
        "--output-data-config",
        f"S3OutputPath=s3://{BUCKET}/cli",
        "--resource-config",
        "InstanceType=ml.m5.xlarge,InstanceCount=1,VolumeSizeInGB=10",
        "--stopping-condition",
        "MaxRuntimeInSeconds=60",
        env=shell,
    )
    assert_refused_at_once(
        done,
        "An error occurred (ValidationException) when calling the CreateTrainingJob operation",
        f"Value '{role}' at 'roleArn'",
    )


def test_describe_and_page_through_training_jobs(shell, staged):
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    names = [f"cli-page-{i}" for i in range(3)]
    for name in names:
        sm.create_training_job(**script_job(s3, name, "print('hello from the CLI test')"))
    wait_training(sm, names[0], timeout=120)
    done = aws_cli("sagemaker", "describe-training-job", "--training-job-name", names[0], env=shell)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    validate_response(sm, "DescribeTrainingJob", job)

    # The CLI's own paginator, one job a page: every job once, oldest first (AWS's default
    # SortBy CreationTime, SortOrder Ascending).
    done = aws_cli(
        "sagemaker",
        "list-training-jobs",
        "--name-contains",
        "cli-page-",
        "--page-size",
        "1",
        env=shell,
    )
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    validate_response(sm, "ListTrainingJobs", listed)
    assert [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]] == names


def test_the_execution_role_and_s3(shell, staged, tmp_path):
    # The CLI prints the trust policy decoded (IAM sends it URL-encoded), so no shape check here.
    done = aws_cli("iam", "get-role", "--role-name", control.LOCAL_ROLE_NAME, env=shell)
    assert done.returncode == 0, done.stderr
    role = json.loads(done.stdout)
    assert role["Role"]["Arn"] == control.LOCAL_ROLE_ARN
    trusted = [
        s["Principal"]["Service"] for s in role["Role"]["AssumeRolePolicyDocument"]["Statement"]
    ]
    assert any("sagemaker.amazonaws.com" in services for services in trusted)

    sent = tmp_path / "hello.txt"
    sent.write_text("hello, local cloud\n")
    uri = f"s3://{BUCKET}/cli/hello.txt"
    assert aws_cli("s3", "cp", str(sent), uri, env=shell).returncode == 0
    listing = aws_cli("s3", "ls", f"s3://{BUCKET}/cli/", env=shell)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split()[-2:] == [str(sent.stat().st_size), "hello.txt"]
    received = tmp_path / "back.txt"
    assert aws_cli("s3", "cp", uri, str(received), env=shell).returncode == 0
    assert received.read_text() == sent.read_text()


def test_stop_training_job_keeps_what_the_script_saved_in_its_grace_period(
    shell, staged, cloud, monkeypatch
):
    # The script takes 1 s in its SIGTERM handler; AWS's 120 s grace is more than it needs.
    monkeypatch.setattr(cloud.service(SageMakerService).runner, "stop_grace", 10.0)
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    sm.create_training_job(**script_job(s3, "cli-stop-1", SAVES_ON_SIGTERM))
    wait_until_ready(cloud, "cli-stop-1")
    done = aws_cli("sagemaker", "stop-training-job", "--training-job-name", "cli-stop-1", env=shell)
    assert done.returncode == 0, done.stderr
    wait_training(sm, "cli-stop-1", timeout=30)
    done = aws_cli(
        "sagemaker", "describe-training-job", "--training-job-name", "cli-stop-1", env=shell
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    validate_response(sm, "DescribeTrainingJob", job)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]][-2:] == ["Stopping", "Stopped"]
    assert tarball_names(s3, job["ModelArtifacts"]["S3ModelArtifacts"]) == {"weights.txt"}


def test_create_training_job_refuses_duplicate_channel_names(shell, staged, tmp_path):
    request = script_job(staged.client("s3"), "cli-dup-channels", "print('never runs')")
    source = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": staged.data_uri}}
    request["InputDataConfig"] = [{"ChannelName": "training", "DataSource": source}] * 2
    document = tmp_path / "request.json"
    document.write_text(json.dumps(request))
    done = aws_cli(
        "sagemaker", "create-training-job", "--cli-input-json", f"file://{document}", env=shell
    )
    assert_refused_at_once(
        done,
        "An error occurred (ValidationException) when calling the CreateTrainingJob operation",
        "training",
    )
    missing = aws_cli(
        "sagemaker", "describe-training-job", "--training-job-name", "cli-dup-channels", env=shell
    )
    assert missing.returncode == 255 and "ValidationException" in missing.stderr
