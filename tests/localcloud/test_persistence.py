"""A restart of the local cloud keeps what AWS keeps: S3 objects (with their LastModified and
ETag), IAM, CloudWatch Logs, SageMaker's job and tuning records; the execution role exists from
the first start. A job running when the local cloud stops ends `Stopped` (an ordered stop) or
`Failed` (a crash), saying why.

Real processes: moto's state is per process, so only a new process shows what came back from
disk (`python -m ops.localcloud.app`, or `ops local up --detach` / `ops local down`)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from ops.localcloud.control import LOCAL_ROLE_ARN, LOCAL_ROLE_NAME
from ops.localcloud.sagemaker import SEARCH_STOPPED
from ops.localcloud.sagemaker.records import LOCAL_CLOUD_DIED, TrainingJob
from ops.localcloud.sagemaker.store import RecordStore
from ops.localcloud.sagemaker.training import LOCAL_CLOUD_STOPPED
from tests.localcloud.conftest import (
    BUCKET,
    run_ops,
    script_job,
    script_tuning_request,
    training_request,
    validate_response,
    wait_for,
    wait_training,
)

PRINTS_LOSS = """
    print("training", flush=True)
    print("loss: 0.25", flush=True)
"""
# Runs until SIGTERM, or until the local cloud that started it is gone (then its parent
# changes), so that a killed local cloud leaves no process behind.
RUNS_UNTIL_STOPPED = """
    import os, time
    parent = os.getppid()
    print("started", flush=True)
    while os.getppid() == parent:
        time.sleep(0.1)
"""
RANGES = {"ContinuousParameterRanges": [{"Name": "x", "MinValue": "0.1", "MaxValue": "1"}]}


class CloudProcess:
    """The local cloud as a process of its own on ``home``, started and stopped at will."""

    def __init__(self, home):
        self.home = home
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> CloudProcess:
        ready = self.home / "ready.json"
        ready.unlink(missing_ok=True)
        with open(self.home / "cloud.log", "a") as log:
            command = [sys.executable, "-m", "ops.localcloud.app", "--home", str(self.home)]
            self.process = subprocess.Popen(
                [*command, "--port", "0", "--ready-file", str(ready)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: ready.exists() or self.process.poll() is not None, bool, 60, 0.05)
        assert self.process.poll() is None, self.log()
        self.url = json.loads(ready.read_text())["url"]
        return self

    def stop(self) -> None:
        """An ordered stop (SIGTERM, as `ops local down` sends)."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=120) == 0, self.log()

    def kill(self) -> None:
        """A crash."""
        self.process.kill()
        self.process.wait(timeout=30)

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def log(self) -> str:
        return (self.home / "cloud.log").read_text()


@pytest.fixture
def local_cloud(tmp_path):
    cloud = CloudProcess(tmp_path)
    yield cloud
    if cloud.process is not None and cloud.process.poll() is None:
        cloud.kill()


def _answer(response: dict) -> dict:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def _error_code(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def test_iam_logs_and_objects_come_back_as_they_were(local_cloud):
    local_cloud.start()
    iam, logs, s3 = (local_cloud.client(s) for s in ("iam", "logs", "s3"))
    execution_role = iam.get_role(RoleName=LOCAL_ROLE_NAME)["Role"]
    assert execution_role["Arn"] == LOCAL_ROLE_ARN
    trusted = execution_role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
    assert {"sagemaker.amazonaws.com", "lambda.amazonaws.com", "ec2.amazonaws.com"} <= set(trusted)

    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*"}]}
    allow["Statement"][0]["Resource"] = "*"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:*"}]}
    trust["Statement"][0]["Principal"] = {"Service": "sagemaker.amazonaws.com"}
    iam.create_role(
        RoleName="app",
        Path="/service/",
        AssumeRolePolicyDocument=json.dumps(trust),
        Description="the app's role",
        Tags=[{"Key": "team", "Value": "dogs"}],
    )
    iam.put_role_policy(RoleName="app", PolicyName="inline", PolicyDocument=json.dumps(allow))
    policy_arn = iam.create_policy(
        PolicyName="managed", Path="/ops/", PolicyDocument=json.dumps(allow), Description="d"
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="app", PolicyArn=policy_arn)
    iam.create_instance_profile(InstanceProfileName="host")
    iam.add_role_to_instance_profile(InstanceProfileName="host", RoleName="app")
    iam.create_user(UserName="ci", Tags=[{"Key": "kind", "Value": "robot"}])
    iam.create_group(GroupName="deployers")
    iam.add_user_to_group(GroupName="deployers", UserName="ci")
    iam.attach_group_policy(GroupName="deployers", PolicyArn=policy_arn)

    logs.create_log_group(logGroupName="/app/web")
    logs.put_retention_policy(logGroupName="/app/web", retentionInDays=7)
    logs.create_log_stream(logGroupName="/app/web", logStreamName="host-1")
    start = int(time.time() * 1000) - 60_000
    events = [{"timestamp": start + i * 10, "message": f"line {i}"} for i in range(30)]
    logs.put_log_events(logGroupName="/app/web", logStreamName="host-1", logEvents=events)

    s3.create_bucket(Bucket="kept-objects")
    for i in range(3):
        s3.put_object(Bucket="kept-objects", Key=f"k/{i}", Body=b"x" * (i + 1) * 1000)
    s3.put_object(
        Bucket="kept-objects",
        Key="typed",
        Body=b"{}",
        ContentType="application/json",
        Metadata={"origin": "test"},
    )

    def state() -> dict:
        roles = {name: iam.get_role(RoleName=name)["Role"] for name in ("app", LOCAL_ROLE_NAME)}
        policy = iam.get_policy(PolicyArn=policy_arn)["Policy"]
        version = iam.get_policy_version(PolicyArn=policy_arn, VersionId="v1")["PolicyVersion"]
        heads = {
            item["Key"]: _answer(s3.head_object(Bucket="kept-objects", Key=item["Key"]))
            for item in s3.list_objects_v2(Bucket="kept-objects")["Contents"]
        }
        return {
            "roles": roles,
            "inline": iam.get_role_policy(RoleName="app", PolicyName="inline")["PolicyDocument"],
            "attached": iam.list_attached_role_policies(RoleName="app")["AttachedPolicies"],
            "policy": (policy, version),
            "profile": iam.get_instance_profile(InstanceProfileName="host")["InstanceProfile"],
            "group": _answer(iam.get_group(GroupName="deployers")),
            "group policies": iam.list_attached_group_policies(GroupName="deployers"),
            "user": (iam.get_user(UserName="ci")["User"], iam.list_user_tags(UserName="ci")),
            "log groups": logs.describe_log_groups()["logGroups"],
            "streams": logs.describe_log_streams(logGroupName="/app/web")["logStreams"],
            "events": logs.get_log_events(
                logGroupName="/app/web", logStreamName="host-1", startFromHead=True
            )["events"],
            "objects": s3.list_objects_v2(Bucket="kept-objects")["Contents"],
            "heads": heads,
        }

    def without_metadata(value):
        if isinstance(value, dict):
            return {k: without_metadata(v) for k, v in value.items() if k != "ResponseMetadata"}
        if isinstance(value, list | tuple):
            return [without_metadata(v) for v in value]
        return value

    before = without_metadata(state())
    time.sleep(1.1)  # a LastModified or CreateDate set anew at restore would differ
    local_cloud.stop()
    local_cloud.start()
    iam, logs, s3 = (local_cloud.client(s) for s in ("iam", "logs", "s3"))
    after = without_metadata(state())
    for part, value in before.items():
        assert after[part] == value, part
    assert len(after["events"]) == 30
    assert after["heads"]["typed"]["Metadata"] == {"origin": "test"}


def test_jobs_their_logs_and_tuning_jobs_survive_an_ordered_restart(local_cloud):
    local_cloud.start()
    sm, s3, logs = (local_cloud.client(s) for s in ("sagemaker", "s3", "logs"))
    s3.create_bucket(Bucket=BUCKET)
    metrics = [("loss", r"loss: ([0-9.]+)")]
    sm.create_training_job(**script_job(s3, "finished", PRINTS_LOSS, metrics=metrics))
    sm.create_hyper_parameter_tuning_job(
        **script_tuning_request(s3, "searched", PRINTS_LOSS, RANGES, jobs=2, parallel=2)
    )
    sm.create_training_job(**script_job(s3, "running", RUNS_UNTIL_STOPPED))
    sm.create_hyper_parameter_tuning_job(
        **script_tuning_request(s3, "searching", RUNS_UNTIL_STOPPED, RANGES, jobs=2, parallel=1)
    )
    finished = wait_training(sm, "finished", timeout=60)
    assert finished["TrainingJobStatus"] == "Completed", finished.get("FailureReason")
    searched = wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="searched"),
        lambda d: d["HyperParameterTuningJobStatus"] == "Completed",
        timeout=60,
    )
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="searched"
    )["TrainingJobSummaries"]
    stream = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="finished/"
    )["logStreams"][0]["logStreamName"]
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream, startFromHead=True
    )["events"]
    assert [e["message"] for e in events] == ["training", "loss: 0.25"]
    _wait_printing(sm, logs, "running")  # the processes run, so the stop has something to stop
    _wait_printing(sm, logs, "searching", tuning=True)
    local_cloud.stop()

    local_cloud.start()
    sm, logs = local_cloud.client("sagemaker"), local_cloud.client("logs")
    assert _answer(sm.describe_training_job(TrainingJobName="finished")) == _answer(finished)
    described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="searched")
    assert _answer(described) == _answer(searched)
    validate_response(sm, "DescribeHyperParameterTuningJob", described)
    assert (
        sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="searched"
        )["TrainingJobSummaries"]
        == trials
    )
    assert (
        logs.get_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream, startFromHead=True
        )["events"]
        == events
    )

    running = sm.describe_training_job(TrainingJobName="running")
    validate_response(sm, "DescribeTrainingJob", running)
    assert running["TrainingJobStatus"] == "Stopped"
    assert running["FailureReason"] == LOCAL_CLOUD_STOPPED
    searching = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="searching")
    assert searching["HyperParameterTuningJobStatus"] == "Stopped"
    assert searching["FailureReason"] == SEARCH_STOPPED
    (trial,) = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="searching"
    )["TrainingJobSummaries"]  # the search was not resumed: no second trial
    assert trial["TrainingJobStatus"] == "Stopped"

    names = {s["TrainingJobName"] for s in sm.list_training_jobs()["TrainingJobSummaries"]}
    assert names == {"finished", "running", trial["TrainingJobName"]} | {
        t["TrainingJobName"] for t in trials
    }
    reuse = training_request("finished", {}, [])
    assert _error_code(lambda: sm.create_training_job(**reuse)) == "ResourceInUse"
    request = script_tuning_request(
        local_cloud.client("s3"), "searched", PRINTS_LOSS, RANGES, jobs=1, parallel=1
    )
    assert _error_code(lambda: sm.create_hyper_parameter_tuning_job(**request)) == "ResourceInUse"
    local_cloud.stop()


def _wait_printing(sm, logs, name: str, tuning: bool = False) -> None:
    """Wait until the training job ``name`` (or the first trial of the tuning job ``name``) has
    printed to its log stream; if the job ended instead, fail at once saying why."""

    def look() -> tuple[dict, bool] | None:
        job = name
        if tuning:
            trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=name
            )["TrainingJobSummaries"]
            if not trials:
                return None
            job = min(t["TrainingJobName"] for t in trials)
        described = sm.describe_training_job(TrainingJobName=job)
        streams = logs.describe_log_streams(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{job}/"
        )["logStreams"]
        printed = any(
            logs.get_log_events(
                logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=s["logStreamName"]
            )["events"]
            for s in streams
        )
        return described, printed

    described, printed = wait_for(
        look, lambda seen: seen[1] or seen[0]["TrainingJobStatus"] != "InProgress", 60, 0.2
    )
    assert printed, (described["TrainingJobName"], described.get("FailureReason"))


def test_jobs_running_when_the_local_cloud_is_killed_are_failed_at_the_next_start(local_cloud):
    local_cloud.start()
    sm, s3, logs = (local_cloud.client(s) for s in ("sagemaker", "s3", "logs"))
    s3.create_bucket(Bucket=BUCKET)
    sm.create_training_job(**script_job(s3, "crashed", RUNS_UNTIL_STOPPED))
    sm.create_hyper_parameter_tuning_job(
        **script_tuning_request(s3, "crashed-search", RUNS_UNTIL_STOPPED, RANGES, 2, 1)
    )
    _wait_printing(sm, logs, "crashed")
    _wait_printing(sm, logs, "crashed-search", tuning=True)
    local_cloud.kill()

    sm = local_cloud.start().client("sagemaker")
    crashed = sm.describe_training_job(TrainingJobName="crashed")
    validate_response(sm, "DescribeTrainingJob", crashed)
    assert (crashed["TrainingJobStatus"], crashed["SecondaryStatus"]) == ("Failed", "Failed")
    assert crashed["FailureReason"] == LOCAL_CLOUD_DIED
    assert crashed["TrainingEndTime"] >= crashed["TrainingStartTime"]
    search = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="crashed-search")
    assert search["HyperParameterTuningJobStatus"] == "Failed"
    assert search["FailureReason"] == LOCAL_CLOUD_DIED
    (trial,) = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="crashed-search"
    )["TrainingJobSummaries"]
    assert (trial["TrainingJobStatus"], trial["FailureReason"]) == ("Failed", LOCAL_CLOUD_DIED)
    reuse = training_request("crashed", {}, [])
    assert _error_code(lambda: sm.create_training_job(**reuse)) == "ResourceInUse"
    local_cloud.stop()


def test_a_record_that_cannot_be_read_is_reported_and_left_out(tmp_path, caplog):
    store = RecordStore(tmp_path)
    kept = TrainingJob(name="kept", region="us-east-1", request=training_request("kept", {}, []))
    store.save(kept)
    damaged = store.path(kept).with_name("damaged.json")
    damaged.write_text('{"kind": "training-job", "name": "dam')
    with caplog.at_level(logging.ERROR, logger="dogops.localcloud"):
        training, tuning = store.load()
    assert [job.name for job in training] == ["kept"]
    assert tuning == []
    assert str(damaged) in caplog.text
    assert training[0].to_dict() == kept.to_dict()


@pytest.mark.slow
def test_objects_survive_ops_local_up_and_down_and_deletions_stick(tmp_path):
    env = {**os.environ, "DOGOPS_HOME": str(tmp_path)}

    def ops(*args: str) -> str:
        done = run_ops(*args, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def up():
        ops("local", "up", "--detach", "--no-bootstrap")  # S3 is what this test is about
        url = json.loads(ops("local", "status", "--json"))["url"]
        return boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    try:
        s3 = up()
        s3.create_bucket(Bucket="kept")
        model = b"\x1f\x8b" + b"x" * 10_000
        s3.put_object(Bucket="kept", Key="models/a/model.tar.gz", Body=model)
        s3.put_object(
            Bucket="kept",
            Key="../odd key",
            Body=b"odd",
            ContentType="text/plain",
            Metadata={"origin": "test"},
        )
        s3.put_object(Bucket="kept", Key="gone", Body=b"soon deleted")
        ops("local", "down")

        s3 = up()
        assert s3.get_object(Bucket="kept", Key="models/a/model.tar.gz")["Body"].read() == model
        odd = s3.get_object(Bucket="kept", Key="../odd key")
        assert odd["Body"].read() == b"odd"
        assert odd["ContentType"] == "text/plain"
        assert odd["Metadata"] == {"origin": "test"}
        s3.delete_object(Bucket="kept", Key="gone")
        ops("local", "down")

        s3 = up()
        with pytest.raises(ClientError):
            s3.head_object(Bucket="kept", Key="gone")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="kept")["Contents"]]
        assert sorted(keys) == ["../odd key", "models/a/model.tar.gz"]
        # Saved under hashed names only: a key cannot climb out of the folder.
        assert len(list((tmp_path / "s3" / "objects").iterdir())) == 2
    finally:
        run_ops("local", "down", env=env)
