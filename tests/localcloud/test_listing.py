"""List orders and filters as the service models document them: SageMaker's list operations
without sort arguments, the tuning trial list's objective sort, and CloudWatch Logs'
FilterLogEvents by log stream name prefix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ops.localcloud.sagemaker.api import SageMakerApi
from ops.localcloud.sagemaker.records import SageMakerBackend, TrainingJob, TuningJob
from ops.localcloud.wire import Call
from tests.localcloud.conftest import (
    script_job,
    script_tuning_request,
    validate_response,
    wait_for,
    wait_training,
)

QUICK = 'print("done", flush=True)'
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
RATE = {"ContinuousParameterRanges": [{"Name": "rate", "MinValue": "0.1", "MaxValue": "1.0"}]}


def names(summaries: list[dict], key: str = "TrainingJobName") -> list[str]:
    return [summary[key] for summary in summaries]


def test_training_jobs_list_oldest_first_without_sort_arguments(staged):
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    created = ["lsorder-c", "lsorder-a", "lsorder-b"]
    for name in created:
        sm.create_training_job(**script_job(s3, name, QUICK))
    listed = sm.list_training_jobs(NameContains="lsorder-")
    validate_response(sm, "ListTrainingJobs", listed)
    assert names(listed["TrainingJobSummaries"]) == created  # CreationTime, Ascending
    by_name = sm.list_training_jobs(NameContains="lsorder-", SortBy="Name")
    assert names(by_name["TrainingJobSummaries"]) == sorted(created)
    newest = sm.list_training_jobs(NameContains="lsorder-", SortOrder="Descending")
    assert names(newest["TrainingJobSummaries"]) == created[::-1]
    for name in created:
        wait_training(sm, name)


def test_tuning_jobs_list_by_name_and_trials_by_name_then_objective_without_the_unscored(staged):
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    # Trial 2 prints no objective: the objective sort leaves it out.
    script = """
    import os
    index = int(os.environ["TRAINING_JOB_NAME"].split("-")[-2])
    print({1: "loss: 0.5", 2: "no objective", 3: "loss: 0.2"}[index], flush=True)
    """
    sm.create_hyper_parameter_tuning_job(
        **script_tuning_request(s3, "lstune-b", script, RATE, jobs=3, parallel=3)
    )
    sm.create_hyper_parameter_tuning_job(
        **script_tuning_request(s3, "lstune-a", QUICK, RATE, jobs=1, parallel=1)
    )
    tunings = sm.list_hyper_parameter_tuning_jobs(NameContains="lstune-")
    validate_response(sm, "ListHyperParameterTuningJobs", tunings)
    key = "HyperParameterTuningJobName"
    assert names(tunings["HyperParameterTuningJobSummaries"], key) == ["lstune-a", "lstune-b"]
    by_creation = sm.list_hyper_parameter_tuning_jobs(NameContains="lstune-", SortBy="CreationTime")
    assert names(by_creation["HyperParameterTuningJobSummaries"], key) == ["lstune-b", "lstune-a"]
    for name in ("lstune-a", "lstune-b"):
        wait_for(
            lambda name=name: sm.describe_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=name
            ),
            lambda d: d["HyperParameterTuningJobStatus"] != "InProgress",
            timeout=120,
        )

    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="lstune-b"
    )
    validate_response(sm, "ListTrainingJobsForHyperParameterTuningJob", trials)
    by_name = names(trials["TrainingJobSummaries"])
    assert [name.split("-")[2] for name in by_name] == ["001", "002", "003"]

    def by_objective(**arguments) -> list[str]:
        seen, token = [], {}
        while True:  # one trial a page: the token follows the objective order too
            answer = sm.list_training_jobs_for_hyper_parameter_tuning_job(
                HyperParameterTuningJobName="lstune-b",
                SortBy="FinalObjectiveMetricValue",
                MaxResults=1,
                **arguments,
                **token,
            )
            seen += names(answer["TrainingJobSummaries"])
            if "NextToken" not in answer:
                return seen
            token = {"NextToken": answer["NextToken"]}

    assert by_objective() == [by_name[2], by_name[0]]  # 0.2, 0.5; trial 2 not listed
    assert by_objective(SortOrder="Descending") == [by_name[0], by_name[2]]


def test_tuning_listings_give_ten_a_page_unless_asked():
    # MaxResults: "The default value is 10." Records only: no trial runs.
    backend = SageMakerBackend()
    api = SageMakerApi(backend, runner=None, closing=None)
    config = {"Strategy": "Random", "ResourceLimits": {}}
    tunings = [
        backend.add_tuning_job(
            TuningJob(
                name=f"page-{index:02d}",
                region="us-east-1",
                request={"HyperParameterTuningJobConfig": config, "TrainingJobDefinition": {}},
                tuned=frozenset(),
                objective_type="Minimize",
                objective_metric="loss",
                max_jobs=12,
                max_parallel=1,
            )
        )
        for index in range(12)
    ]
    for index in range(12):
        trial = TrainingJob(name=f"page-00-{index:03d}", region="us-east-1", request={})
        tunings[0].add_trial(trial)

    first = api.list_hyper_parameter_tuning_jobs(Call("us-east-1", {}))
    assert len(first["HyperParameterTuningJobSummaries"]) == 10
    rest = api.list_hyper_parameter_tuning_jobs(
        Call("us-east-1", {"NextToken": first["NextToken"]})
    )
    key = "HyperParameterTuningJobName"
    assert names(rest["HyperParameterTuningJobSummaries"], key) == ["page-10", "page-11"]
    trials = {"HyperParameterTuningJobName": "page-00"}
    listed = api.list_training_jobs_for_hyper_parameter_tuning_job(Call("us-east-1", trials))
    assert len(listed["TrainingJobSummaries"]) == 10 and "NextToken" in listed
    everything = {**trials, "MaxResults": 100}
    listed = api.list_training_jobs_for_hyper_parameter_tuning_job(Call("us-east-1", everything))
    assert len(listed["TrainingJobSummaries"]) == 12


@pytest.fixture(scope="module")
def two_jobs_logs(staged) -> list[dict]:
    """Two jobs whose names share a prefix, five lines each; every event of the group."""
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    for name in ("lslog-a", "lslog-ab"):
        script = f"for i in range(5): print('{name} line', i, flush=True)"
        sm.create_training_job(**script_job(s3, name, script))
    for name in ("lslog-a", "lslog-ab"):
        assert wait_training(sm, name)["TrainingJobStatus"] == "Completed"
    logs = staged.client("logs")
    return [
        event
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=LOG_GROUP)
        for event in page["events"]
    ]


def test_filter_log_events_by_stream_prefix_returns_only_those_streams(staged, two_jobs_logs):
    logs = staged.client("logs")
    answer = logs.filter_log_events(logGroupName=LOG_GROUP, logStreamNamePrefix="lslog-a/")
    validate_response(logs, "FilterLogEvents", answer)
    events = answer["events"]
    assert {e["logStreamName"].split("/")[0] for e in events} == {"lslog-a"}
    assert [e["message"] for e in events if "line" in e["message"]] == [
        f"lslog-a line {i}" for i in range(5)
    ]
    assert events == [e for e in two_jobs_logs if e["logStreamName"].startswith("lslog-a/")]
    stamps = [(e["timestamp"], e["ingestionTime"]) for e in events]
    assert stamps == sorted(stamps)  # oldest first
    # A prefix is a prefix: lslog-a matches lslog-ab's streams too, as on AWS.
    both = logs.filter_log_events(logGroupName=LOG_GROUP, logStreamNamePrefix="lslog-a")
    assert {e["logStreamName"].split("/")[0] for e in both["events"]} == {"lslog-a", "lslog-ab"}


def test_filter_log_events_pages_with_opaque_tokens_and_reads_backwards(staged, two_jobs_logs):
    logs = staged.client("logs")
    expected = [e for e in two_jobs_logs if e["logStreamName"].split("/")[0] == "lslog-ab"]
    query = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": "lslog-ab/"}
    seen, token = [], {}
    while True:
        answer = logs.filter_log_events(**query, limit=2, **token)
        validate_response(logs, "FilterLogEvents", answer)
        assert len(answer["events"]) <= 2
        seen += answer["events"]
        if "nextToken" not in answer:
            break
        token = {"nextToken": answer["nextToken"]}
    assert seen == expected
    backwards = logs.filter_log_events(**query, startFromHead=False, limit=3)
    assert backwards["events"] == expected[::-1][:3]
    rest = logs.filter_log_events(**query, nextToken=backwards["nextToken"])
    assert rest["events"] == expected[::-1][3:]  # the token keeps the direction
    pattern = logs.filter_log_events(**query, filterPattern='"line 3"')
    assert [e["message"] for e in pattern["events"]] == ["lslog-ab line 3"]


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"logStreamNames": ["x"], "logStreamNamePrefix": "x"}, "InvalidParameterException"),
        ({"nextToken": "not-ours"}, "InvalidParameterException"),
        ({"logGroupName": "/no/such/group"}, "ResourceNotFoundException"),
        ({"logGroupIdentifier": LOG_GROUP}, "InvalidParameterException"),  # and logGroupName
    ],
)
def test_filter_log_events_refuses_what_aws_refuses(staged, arguments, code):
    logs = staged.cloud_client("logs", Config(parameter_validation=False))
    with pytest.raises(ClientError) as refused:
        logs.filter_log_events(**{"logGroupName": LOG_GROUP, **arguments})
    assert refused.value.response["Error"]["Code"] == code


def test_aws_cli_filter_log_events_with_a_stream_prefix(cloud, two_jobs_logs):
    env = {**os.environ, **cloud.environment()}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "aws"),
            "logs",
            "filter-log-events",
            "--log-group-name",
            LOG_GROUP,
            "--log-stream-name-prefix",
            "lslog-a/",
            "--output",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    streams = {e["logStreamName"].split("/")[0] for e in json.loads(done.stdout)["events"]}
    assert streams == {"lslog-a"}
