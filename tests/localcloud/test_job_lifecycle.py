"""A training job's life as AWS gives it: StopTrainingJob and MaxRuntimeInSeconds are SIGTERM, a
grace period, SIGKILL, then the upload of what the script saved; every job starts in a fresh
work folder; code in the job reaches the local cloud's APIs as the job's role; a job running
when the local cloud stops ends Stopped, saying why."""

from __future__ import annotations

import contextlib
import io
import signal
import tarfile
import time
from pathlib import Path

import pytest

from ops.localcloud import supervisor
from ops.localcloud.app import LocalCloud
from ops.localcloud.sagemaker import SageMakerService, training
from ops.s3 import parse_s3_uri
from tests.localcloud.conftest import (
    BUCKET,
    ROLE,
    Staged,
    script_job,
    training_record,
    validate_response,
    wait_for,
    wait_training,
)

REGION = "us-east-1"

# Saves its model in its SIGTERM handler, slowly enough for the test to see the job Stopping.
SAVES_ON_SIGTERM = """
    import os, pathlib, signal, sys, time
    model = pathlib.Path(os.environ["SM_MODEL_DIR"])

    def on_sigterm(signum, frame):
        (model.parent / "in-handler").touch()
        time.sleep(1.0)
        (model / "weights.txt").write_text("saved in the grace period")
        (pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"]) / "notes.txt").write_text("stopped")
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    (model.parent / "ready").touch()
    time.sleep(600)
"""

IGNORES_SIGTERM = """
    import os, pathlib, signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    model = pathlib.Path(os.environ["SM_MODEL_DIR"])
    (model / "weights.txt").write_text("saved before the stop")
    (model.parent / "ready").touch()
    time.sleep(600)
"""


def instance_folder(cloud: LocalCloud, name: str) -> Path:
    return cloud.home / "jobs" / REGION / name / "algo-1"


def wait_until_ready(cloud: LocalCloud, name: str) -> None:
    wait_for(lambda: (instance_folder(cloud, name) / "ready").exists(), bool, 60, poll=0.05)


def tarball_names(s3, uri: str) -> set[str]:
    bucket, key = parse_s3_uri(uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {member.name for member in tar.getmembers() if member.isfile()}


def secondary_statuses(job: dict) -> list[str]:
    return [t["Status"] for t in job["SecondaryStatusTransitions"]]


@pytest.fixture
def runner(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> training.TrainingRunner:
    """The session cloud's runner, with a grace period long enough for SAVES_ON_SIGTERM."""
    runner = cloud.service(SageMakerService).runner
    monkeypatch.setattr(runner, "stop_grace", 10.0)
    return runner


def test_a_stopped_job_is_stopping_while_its_script_saves_then_keeps_its_model(
    staged, cloud, runner
):
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    sm.create_training_job(**script_job(s3, "stop-saves-1", SAVES_ON_SIGTERM))
    wait_until_ready(cloud, "stop-saves-1")
    sm.stop_training_job(TrainingJobName="stop-saves-1")

    wait_for(lambda: (instance_folder(cloud, "stop-saves-1") / "in-handler").exists(), bool, 30)
    stopping = sm.describe_training_job(TrainingJobName="stop-saves-1")
    validate_response(sm, "DescribeTrainingJob", stopping)
    assert (stopping["TrainingJobStatus"], stopping["SecondaryStatus"]) == ("Stopping", "Stopping")
    assert not (instance_folder(cloud, "stop-saves-1") / "model" / "weights.txt").exists()
    listed = sm.list_training_jobs(NameContains="stop-saves-1")["TrainingJobSummaries"]
    assert [j["TrainingJobStatus"] for j in listed] == ["Stopping"]

    job = wait_training(sm, "stop-saves-1", timeout=30)
    validate_response(sm, "DescribeTrainingJob", job)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert secondary_statuses(job)[-3:] == ["Training", "Stopping", "Stopped"]
    assert "FailureReason" not in job
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{BUCKET}/models/stop-saves-1/output/model.tar.gz"
    assert tarball_names(s3, artifact) == {"weights.txt"}
    output = artifact.replace("model.tar.gz", "output.tar.gz")
    assert tarball_names(s3, output) == {"notes.txt"}


def test_a_script_ignoring_sigterm_is_killed_after_the_grace_period(
    staged, cloud, runner, monkeypatch
):
    monkeypatch.setattr(runner, "stop_grace", 1.0)
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    sm.create_training_job(**script_job(s3, "stop-ignored-1", IGNORES_SIGTERM))
    wait_until_ready(cloud, "stop-ignored-1")
    stopped_at = time.monotonic()
    sm.stop_training_job(TrainingJobName="stop-ignored-1")
    job = wait_for(
        lambda: sm.describe_training_job(TrainingJobName="stop-ignored-1"),
        lambda d: d["TrainingJobStatus"] == "Stopped",
        timeout=30,  # the 1 s grace, not 120 s
        poll=0.1,
    )
    assert time.monotonic() - stopped_at >= 1.0  # the grace was given
    (child,) = training_record(cloud, "stop-ignored-1").children
    assert child.returncode == -signal.SIGKILL
    assert tarball_names(s3, job["ModelArtifacts"]["S3ModelArtifacts"]) == {"weights.txt"}


def test_max_runtime_stops_the_job_as_max_runtime_exceeded_and_keeps_its_model(
    staged, cloud, runner
):
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    request = script_job(s3, "max-runtime-1", SAVES_ON_SIGTERM)
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 2}
    sm.create_training_job(**request)
    job = wait_training(sm, "max-runtime-1", timeout=60)
    validate_response(sm, "DescribeTrainingJob", job)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert secondary_statuses(job)[-3:] == ["Training", "Stopping", "MaxRuntimeExceeded"]
    assert job["TrainingTimeInSeconds"] >= 2
    assert tarball_names(s3, job["ModelArtifacts"]["S3ModelArtifacts"]) == {"weights.txt"}


def test_a_job_packs_only_its_own_files_when_its_folder_has_stale_ones(staged, cloud):
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    # What a job of the same name left before a restart forgot it.
    stale = instance_folder(cloud, "fresh-1")
    for path in ("model/old-weights.txt", "output/data/old-notes.txt", "checkpoints/old.pt"):
        (stale / path).parent.mkdir(parents=True, exist_ok=True)
        (stale / path).write_text("the old job's")
    script = """
        import os, pathlib
        (pathlib.Path(os.environ["SM_MODEL_DIR"]) / "weights.txt").write_text("this job's")
        print(sorted(p.name for p in pathlib.Path(os.environ["SM_CHECKPOINT_DIR"]).iterdir()))
    """
    sm.create_training_job(**script_job(s3, "fresh-1", script))
    job = wait_training(sm, "fresh-1", timeout=60)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert tarball_names(s3, artifact) == {"weights.txt"}
    assert tarball_names(s3, artifact.replace("model.tar.gz", "output.tar.gz")) == set()
    assert not (stale / "checkpoints" / "old.pt").exists()


def test_code_in_the_job_reaches_the_local_cloud_as_the_jobs_role(staged, monkeypatch):
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    # The local cloud's own AWS settings must not reach the job: this profile does not exist.
    monkeypatch.setenv("AWS_PROFILE", "the-local-clouds-own-profile")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "the-local-clouds-own-key")
    script = f"""
        import os, boto3
        arn = boto3.client("sts").get_caller_identity()["Arn"]
        key = "from-job/" + os.environ["TRAINING_JOB_NAME"]
        boto3.client("s3").put_object(Bucket="{BUCKET}", Key=key, Body=arn.encode())
        print("region", os.environ["AWS_REGION"], boto3.session.Session().region_name)
    """
    sm.create_training_job(**script_job(s3, "role-1", script))
    job = wait_training(sm, "role-1", timeout=60)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    arn = s3.get_object(Bucket=BUCKET, Key="from-job/role-1")["Body"].read().decode()
    role_name = ROLE.rsplit("/", 1)[1]
    assert arn == f"arn:aws:sts::123456789012:assumed-role/{role_name}/SageMaker"


def test_jobs_running_when_the_local_cloud_stops_end_stopped_saying_why(tmp_path, monkeypatch):
    # A job already stopping with AWS's 120 s grace must not hold up the shutdown, whose own
    # grace (GRACE_S, short here) applies to every child.
    monkeypatch.delenv(training.STOP_GRACE_ENV, raising=False)
    monkeypatch.setattr(supervisor, "GRACE_S", 3.0)
    cloud = LocalCloud(tmp_path, persist=False).start()
    try:
        own = Staged(cloud, data_uri="", source_uri="")  # its clients, nothing staged
        sm, s3 = own.client("sagemaker"), own.client("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=BUCKET)  # moto's state is shared with the session's cloud
        sm.create_training_job(**script_job(s3, "down-stubborn-1", IGNORES_SIGTERM))
        sm.create_training_job(**script_job(s3, "down-running-1", SAVES_ON_SIGTERM))
        wait_until_ready(cloud, "down-stubborn-1")
        wait_until_ready(cloud, "down-running-1")
        sm.stop_training_job(TrainingJobName="down-stubborn-1")
    finally:
        stopping_at = time.monotonic()
        cloud.stop()
    took = time.monotonic() - stopping_at
    assert took < 30.0, f"stopping took {took:.0f} s: the job's 120 s grace held it up"

    backend = cloud.service(SageMakerService).backend
    running = backend.training_job(REGION, "down-running-1").describe()
    assert (running["TrainingJobStatus"], running["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert running["FailureReason"] == training.LOCAL_CLOUD_STOPPED
    assert running["ModelArtifacts"]["S3ModelArtifacts"].endswith("/model.tar.gz")
    stubborn = backend.training_job(REGION, "down-stubborn-1").describe()
    assert (stubborn["TrainingJobStatus"], stubborn["FailureReason"]) == ("Stopped", None)
