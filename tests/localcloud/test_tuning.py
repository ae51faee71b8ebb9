"""Hyperparameter tuning jobs in the local cloud: trials are real training jobs."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import optuna
import pytest
from botocore.exceptions import ClientError

from ops.localcloud.sagemaker import tuning as tuning_module
from ops.localcloud.sagemaker.records import TrainingJob, TuningJob
from ops.localcloud.sagemaker.tuning import ParameterSpace
from tests.localcloud.conftest import (
    script_tuning_request,
    training_record,
    validate_response,
    wait_for,
)


def tuning_request(staged, name: str, strategy: str = "Random", jobs: int = 2, parallel: int = 2):
    job = staged.job_request("unused", epochs="1")
    job.pop("TrainingJobName")
    static = {k: v for k, v in job.pop("HyperParameters").items() if k != "batch-size"}
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "Test Loss"},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": jobs,
                "MaxParallelTrainingJobs": parallel,
            },
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {
                        "Name": "learning-rate",
                        "MinValue": "0.001",
                        "MaxValue": "0.1",
                        "ScalingType": "Logarithmic",
                    }
                ],
                "CategoricalParameterRanges": [{"Name": "batch-size", "Values": ["4", "8"]}],
            },
            "RandomSeed": 7,
        },
        "TrainingJobDefinition": {**job, "StaticHyperParameters": static},
    }


def wait_tuning(sm, name: str, timeout: float = 400.0) -> dict:
    return wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        lambda d: d["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"),
        timeout,
        poll=1.0,
    )


@pytest.mark.slow
def test_two_trials_and_the_best_is_the_lowest_test_loss(staged):
    sm = staged.client("sagemaker")
    arn = sm.create_hyper_parameter_tuning_job(**tuning_request(staged, "hpo-two"))
    assert arn["HyperParameterTuningJobArn"].endswith(":hyper-parameter-tuning-job/hpo-two")
    tuning = wait_tuning(sm, "hpo-two")
    validate_response(sm, "DescribeHyperParameterTuningJob", tuning)
    assert tuning["HyperParameterTuningJobStatus"] == "Completed", tuning.get("FailureReason")
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 2
    assert tuning["ObjectiveStatusCounters"] == {"Succeeded": 2, "Pending": 0, "Failed": 0}

    listed = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="hpo-two"
    )
    validate_response(sm, "ListTrainingJobsForHyperParameterTuningJob", listed)
    trials = listed["TrainingJobSummaries"]
    assert len(trials) == 2
    losses = {}
    for trial in trials:
        assert re.fullmatch(r"hpo-two-00[12]-[0-9a-f]{8}", trial["TrainingJobName"])
        tuned = trial["TunedHyperParameters"]
        assert 0.001 <= float(tuned["learning-rate"]) <= 0.1
        assert tuned["batch-size"] in {"4", "8"}
        job = sm.describe_training_job(TrainingJobName=trial["TrainingJobName"])
        assert job["TuningJobArn"] == arn["HyperParameterTuningJobArn"]
        assert job["HyperParameters"]["learning-rate"] == tuned["learning-rate"]
        metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
        losses[trial["TrainingJobName"]] = metrics["Test Loss"]
        assert trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == metrics["Test Loss"]
    best = tuning["BestTrainingJob"]
    assert best["TrainingJobName"] == min(losses, key=losses.get)
    assert best["FinalHyperParameterTuningJobObjectiveMetric"] == {
        "Type": "Minimize",
        "MetricName": "Test Loss",
        "Value": min(losses.values()),
    }
    summaries = sm.list_hyper_parameter_tuning_jobs(NameContains="hpo-two")
    validate_response(sm, "ListHyperParameterTuningJobs", summaries)
    assert summaries["HyperParameterTuningJobSummaries"][0]["Strategy"] == "Random"


def test_max_parallel_is_respected_and_stop_stops_the_trials(staged, cloud):
    sm = staged.client("sagemaker")
    request = tuning_request(staged, "hpo-stop", jobs=3, parallel=1)
    request["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] = "500"
    sm.create_hyper_parameter_tuning_job(**request)
    wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="hpo-stop"),
        lambda d: d["TrainingJobStatusCounters"]["InProgress"] == 1,
        timeout=60,
    )
    listed = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="hpo-stop"
    )["TrainingJobSummaries"]
    assert len(listed) == 1  # MaxParallelTrainingJobs = 1: the next waits
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="hpo-stop")
    tuning = wait_tuning(sm, "hpo-stop", timeout=60)
    assert tuning["HyperParameterTuningJobStatus"] == "Stopped"
    assert tuning["TrainingJobStatusCounters"]["Stopped"] == 1
    job = training_record(cloud, listed[0]["TrainingJobName"])
    assert job.status == "Stopped"
    assert not any(child.running() for child in job.children)


def test_all_trials_failing_fails_the_tuning_job(staged):
    sm = staged.client("sagemaker")
    request = tuning_request(staged, "hpo-fail", jobs=2, parallel=2)
    request["TrainingJobDefinition"]["StaticHyperParameters"]["arch"] = "resnet9000"
    sm.create_hyper_parameter_tuning_job(**request)
    tuning = wait_tuning(sm, "hpo-fail", timeout=120)
    assert tuning["HyperParameterTuningJobStatus"] == "Failed"
    assert "All training jobs failed" in tuning["FailureReason"]
    assert tuning["TrainingJobStatusCounters"]["NonRetryableError"] == 2
    assert "BestTrainingJob" not in tuning


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"].update(
                MetricName="Accuracy"
            ),
            "not among the training job definition's MetricDefinitions",
        ),
        (
            lambda r: r["TrainingJobDefinition"]["OutputDataConfig"].update(
                S3OutputPath="https://example.com/models"
            ),
            "must be an s3:// URI",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Hyperband"),
            "not supported locally",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"].update(
                ContinuousParameterRanges=[
                    {"Name": "learning-rate", "MinValue": "0.5", "MaxValue": "0.1"}
                ]
            ),
            "must not exceed",
        ),
    ],
)
def test_bad_tuning_requests_are_validation_errors(staged, change, message):
    sm = staged.client("sagemaker")
    request = tuning_request(staged, "hpo-bad")
    change(request)
    with pytest.raises(ClientError) as error:
        sm.create_hyper_parameter_tuning_job(**request)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert message in error.value.response["Error"]["Message"]


def test_parameter_space_scalings_stay_in_range():
    space = ParameterSpace.from_ranges(
        {
            "ContinuousParameterRanges": [
                {
                    "Name": "lr",
                    "MinValue": "0.001",
                    "MaxValue": "0.1",
                    "ScalingType": "Logarithmic",
                },
                {
                    "Name": "momentum",
                    "MinValue": "0.5",
                    "MaxValue": "0.999",
                    "ScalingType": "ReverseLogarithmic",
                },
            ],
            "IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "9"}],
            "CategoricalParameterRanges": [{"Name": "arch", "Values": ["resnet18", "resnet50"]}],
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    momenta = []
    for _ in range(200):
        values = space.to_hyperparameters(study.ask(space.distributions).params)
        assert 0.001 <= float(values["lr"]) <= 0.1
        assert 1 <= int(values["epochs"]) <= 9
        assert values["arch"] in {"resnet18", "resnet50"}
        momenta.append(float(values["momentum"]))
    assert all(0.5 <= m <= 0.999 for m in momenta)
    # Reverse-logarithmic sampling is dense near the top: most values above the midpoint.
    assert sum(m > 0.75 for m in momenta) > 0.7 * len(momenta)
    assert math.isclose(max(momenta), 0.999, abs_tol=0.01)


@pytest.mark.slow
def test_trials_of_a_plain_parse_args_script_get_only_their_own_flags(staged):
    # SageMaker reserves _tuning_objective_metric and sagemaker_* for itself: a trial's script
    # sees only the tuned and static hyperparameters, so argparse's parse_args() accepts them.
    request = script_tuning_request(
        staged.client("s3"),  # the bucket is the staged one's
        "plain-args",
        """
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("--rate", type=float, required=True)
        parser.add_argument("--label", required=True)
        args = parser.parse_args()
        print(f"loss: {1 / args.rate}", flush=True)
        """,
        {"ContinuousParameterRanges": [{"Name": "rate", "MinValue": "0.1", "MaxValue": "1.0"}]},
        jobs=2,
        parallel=2,
        static={"label": "plain"},
    )
    sm = staged.client("sagemaker")
    sm.create_hyper_parameter_tuning_job(**request)
    described = wait_tuning(sm, "plain-args")
    assert described["HyperParameterTuningJobStatus"] == "Completed", described
    assert described["TrainingJobStatusCounters"]["Completed"] == 2
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="plain-args"
    )["TrainingJobSummaries"]
    first = sm.describe_training_job(TrainingJobName=trials[0]["TrainingJobName"])
    # The record keeps what SageMaker shows; only the script's arguments leave it out.
    assert first["HyperParameters"]["_tuning_objective_metric"] == "loss"


# Trial 001 reports loss 0.1 at once; every other trial would take a minute.
FIRST_FAST = """
import os, time
if "-001-" in os.environ["TRAINING_JOB_NAME"]:
    print("loss: 0.1", flush=True)
else:
    time.sleep(60)
    print("loss: 0.9", flush=True)
"""
RATE = {"ContinuousParameterRanges": [{"Name": "rate", "MinValue": "0.1", "MaxValue": "1.0"}]}


def trial_statuses(sm, name: str) -> dict[str, str]:
    listed = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, MaxResults=100
    )["TrainingJobSummaries"]
    return {t["TrainingJobName"].split("-")[-2]: t["TrainingJobStatus"] for t in listed}


def test_reaching_the_target_objective_stops_the_search_and_completes(staged):
    sm = staged.client("sagemaker")
    request = script_tuning_request(
        staged.client("s3"), "crit-target", FIRST_FAST, RATE, jobs=6, parallel=2
    )
    request["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] = {
        "TargetObjectiveMetricValue": 0.5  # Minimize: reached by loss <= 0.5
    }
    sm.create_hyper_parameter_tuning_job(**request)
    tuning = wait_tuning(sm, "crit-target", timeout=50)  # well before a slow trial ends
    validate_response(sm, "DescribeHyperParameterTuningJob", tuning)
    assert tuning["HyperParameterTuningJobStatus"] == "Completed", tuning.get("FailureReason")
    assert trial_statuses(sm, "crit-target") == {"001": "Completed", "002": "Stopped"}
    assert tuning["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == 0.1


def test_max_runtime_is_the_tuning_jobs_own_limit_enforced_while_trials_run(staged, monkeypatch):
    # The service model's minimum is 120 s: the test moves the tuning loop's clock instead.
    now = [1000.0]
    monkeypatch.setattr(tuning_module, "clock", lambda: now[0])
    sm = staged.client("sagemaker")
    request = script_tuning_request(
        staged.client("s3"), "crit-runtime", FIRST_FAST, RATE, jobs=6, parallel=2
    )
    request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxRuntimeInSeconds"] = 120
    sm.create_hyper_parameter_tuning_job(**request)
    wait_for(  # trial 1 done; trials 2 and 3 running (and sleeping)
        lambda: trial_statuses(sm, "crit-runtime"),
        lambda t: t == {"001": "Completed", "002": "InProgress", "003": "InProgress"},
        timeout=60,
    )
    now[0] += 120
    tuning = wait_tuning(sm, "crit-runtime", timeout=50)
    validate_response(sm, "DescribeHyperParameterTuningJob", tuning)
    assert tuning["HyperParameterTuningJobStatus"] == "Completed", tuning.get("FailureReason")
    assert trial_statuses(sm, "crit-runtime") == {
        "001": "Completed",
        "002": "Stopped",
        "003": "Stopped",
    }
    assert tuning["TrainingJobStatusCounters"]["Stopped"] == 2
    assert 0 <= tuning["ConsumedResources"]["RuntimeInSeconds"] < 60


def test_trials_not_improving_the_best_objective_end_the_search(staged):
    sm = staged.client("sagemaker")
    request = script_tuning_request(
        staged.client("s3"), "crit-plateau", 'print("loss: 1.0", flush=True)', RATE, 8, 1
    )
    request["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] = {
        "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3},
        "ConvergenceDetected": {"CompleteOnConvergence": "Enabled"},  # accepted; never early
    }
    sm.create_hyper_parameter_tuning_job(**request)
    tuning = wait_tuning(sm, "crit-plateau", timeout=120)
    assert tuning["HyperParameterTuningJobStatus"] == "Completed", tuning.get("FailureReason")
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 4  # the best, then 3 no better
    assert tuning["TuningJobCompletionDetails"]["NumberOfTrainingJobsObjectiveNotImproving"] == 3


def test_not_improving_counts_trials_since_the_best_last_improved_by_more_than_one_percent():
    tuning = TuningJob(
        name="plateau",
        region="us-east-1",
        request={},
        tuned=frozenset(),
        objective_type="Minimize",
        objective_metric="loss",
        max_jobs=9,
        max_parallel=1,
    )
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for index, loss in enumerate([1.0, 0.995, 0.5, 0.499, 0.6]):
        trial = TrainingJob(name=f"t{index}", region="us-east-1", request={})
        trial.record_metric("loss", loss)
        trial.status = "Completed"
        trial.ended = start + timedelta(seconds=index)
        tuning.add_trial(trial)
        # 0.995 and 0.499 are within 1% of the best: not an improvement.
        assert tuning.not_improving() == [0, 1, 0, 1, 2][index]
