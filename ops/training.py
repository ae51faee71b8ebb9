"""`ops train`: data to S3, a hyperparameter tuning job, then training with the best values.

Everything goes through the SageMaker API of a `Target` (the local cloud or AWS): ops/staging.py
puts the code and data in S3, ops/job_requests.py builds the requests, and this module starts
the jobs, waits for them and reports the result.
"""

from __future__ import annotations

import secrets
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ops.errors import OpsError
from ops.job_requests import (
    UNTUNED_DEFAULTS,
    TrainPlan,
    training_request,
    tuning_request,
)
from ops.jsonfile import write_atomic

# ENTRY_POINT and source_tarball: their old import path, which the local cloud's tests use.
from ops.staging import ENTRY_POINT, Progress, source_tarball, stage_data, stage_source  # noqa: F401
from ops.target import Target

TERMINAL = {"Completed", "Failed", "Stopped"}
TEST_ACCURACY = "Test Accuracy"  # the metric line ml/train.py prints after training


@dataclass
class TrainResult:
    target: str
    data_uri: str
    tuning_job: str | None
    trials: list[dict]
    best_hyperparameters: dict[str, str]
    best_objective: float | None
    training_job: str
    instance_count: int
    model_artifact: str
    metrics: dict[str, float]
    seconds: float
    recorded: str = ""
    # The final model's accuracy on the test split (a fraction); None when it was not measured.
    test_accuracy: float | None = field(init=False)

    def __post_init__(self) -> None:
        self.test_accuracy = self.metrics.get(TEST_ACCURACY)

    def to_json(self) -> dict:
        return asdict(self)


def _stamp() -> str:
    """Time to the second plus 4 hex digits: two runs in the same second do not collide, and
    ``dogops-hpo-<stamp>`` stays within the 32 characters a tuning job name may have."""
    return datetime.now(UTC).strftime("%y%m%d-%H%M%S-") + secrets.token_hex(2)


@contextmanager
def _interruptible(kind: str, name: str, stop: str):
    """Ctrl-C stops waiting, not the job: say so, and how to stop it."""
    try:
        yield
    except KeyboardInterrupt:
        raise OpsError(
            f"interrupted: {kind} {name} keeps running; stop it with "
            f"`aws sagemaker {stop} --{kind.replace(' ', '-')}-name {name}`"
        ) from None


def wait_tuning(target: Target, name: str, progress: Progress, poll_s: float) -> dict:
    with _interruptible("hyper-parameter-tuning-job", name, "stop-hyper-parameter-tuning-job"):
        return _wait_tuning(target, name, progress, poll_s)


def wait_training(target: Target, name: str, progress: Progress, poll_s: float) -> dict:
    with _interruptible("training-job", name, "stop-training-job"):
        return _wait_training(target, name, progress, poll_s)


def _wait_tuning(target: Target, name: str, progress: Progress, poll_s: float) -> dict:
    sm = target.client("sagemaker")
    while True:
        described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, MaxResults=100
        )["TrainingJobSummaries"]
        progress("tuning", {"job": described, "trials": trials})
        if described["HyperParameterTuningJobStatus"] in TERMINAL:
            return {"job": described, "trials": trials}
        time.sleep(poll_s)


def _wait_training(target: Target, name: str, progress: Progress, poll_s: float) -> dict:
    sm = target.client("sagemaker")
    while True:
        described = sm.describe_training_job(TrainingJobName=name)
        progress("training", {"job": described})
        if described["TrainingJobStatus"] in TERMINAL:
            return described
        time.sleep(poll_s)


def _data_uri(target: Target, plan: TrainPlan, progress: Progress) -> str:
    if plan.data_uri:
        return plan.data_uri.rstrip("/")
    if plan.data is None:
        raise OpsError("give a data folder (--data) or an S3 URI (--data-uri)")
    return stage_data(target, plan.data, progress)


def _trial_row(summary: dict) -> dict:
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    return {
        "name": summary["TrainingJobName"],
        "status": summary["TrainingJobStatus"],
        "hyperparameters": summary.get("TunedHyperParameters", {}),
        "objective": metric.get("Value"),
    }


def train(
    target: Target,
    plan: TrainPlan,
    progress: Progress | None = None,
    poll_s: float = 2.0,
) -> TrainResult:
    progress = progress or (lambda event, info: None)
    started = time.monotonic()
    run = f"dogops-{_stamp()}"
    sm = target.client("sagemaker")
    try:
        data_uri = _data_uri(target, plan, progress)
        source_uri = stage_source(target, run)
        best: dict[str, str] = {}
        best_objective = None
        tuning_name = None
        trials: list[dict] = []
        if plan.tune:
            tuning_name = f"dogops-hpo-{_stamp()}"
            sm.create_hyper_parameter_tuning_job(
                **tuning_request(target, plan, data_uri, source_uri, tuning_name)
            )
            progress("tuning-started", {"name": tuning_name})
            outcome = wait_tuning(target, tuning_name, progress, poll_s)
            described = outcome["job"]
            trials = [_trial_row(t) for t in outcome["trials"]]
            best_job = described.get("BestTrainingJob")
            if described["HyperParameterTuningJobStatus"] != "Completed" or not best_job:
                reason = (
                    described.get("FailureReason") or described["HyperParameterTuningJobStatus"]
                )
                raise OpsError(f"tuning job {tuning_name} ended without a best job: {reason}")
            best = dict(best_job["TunedHyperParameters"])
            best_objective = best_job["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
            progress("tuned", {"best": best, "objective": best_objective})
        else:
            best = {k: v for k, v in UNTUNED_DEFAULTS.items() if k not in plan.hyperparameters}
        training_name = f"dogops-train-{_stamp()}"
        sm.create_training_job(
            **training_request(target, plan, data_uri, source_uri, training_name, best)
        )
        progress("training-started", {"name": training_name})
        described = wait_training(target, training_name, progress, poll_s)
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"SageMaker request failed: {exc}") from exc
    if described["TrainingJobStatus"] != "Completed":
        raise OpsError(
            f"training job {training_name} {described['TrainingJobStatus'].lower()}: "
            f"{described.get('FailureReason', 'no reason given')}"
        )
    result = TrainResult(
        target=target.name,
        data_uri=data_uri,
        tuning_job=tuning_name,
        trials=trials,
        best_hyperparameters={**best, **plan.hyperparameters},
        best_objective=best_objective,
        training_job=training_name,
        instance_count=plan.instance_count,
        model_artifact=described["ModelArtifacts"]["S3ModelArtifacts"],
        metrics={m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList", [])},
        seconds=round(time.monotonic() - started, 1),
    )
    return result


def train_on_ec2(
    target: Target,
    plan: TrainPlan,
    progress: Progress | None = None,
) -> TrainResult:
    """The script on the target's training host through SSM (no tuning): Terraform's EC2 host
    on AWS, the local cloud's host locally. The model lands in the same S3 layout as a SageMaker
    job's."""
    from ops import ec2

    progress = progress or (lambda event, info: None)
    started = time.monotonic()
    name = f"dogops-ec2-{_stamp()}"
    hyperparameters = {
        **plan.profile.hyperparameters(),
        **UNTUNED_DEFAULTS,
        **plan.hyperparameters,
    }
    host = ec2.TrainingHost.from_outputs(target.outputs)
    data_uri = _data_uri(target, plan, progress)
    artifact, metrics = ec2.train_on_host(target, host, data_uri, name, hyperparameters, progress)
    result = TrainResult(
        target=target.name,
        data_uri=data_uri,
        tuning_job=None,
        trials=[],
        best_hyperparameters=hyperparameters,
        best_objective=None,
        training_job=name,
        instance_count=1,
        model_artifact=artifact,
        metrics=metrics,
        seconds=round(time.monotonic() - started, 1),
    )
    return result


def record(result: TrainResult, folder: Path) -> Path:
    """Keep the result where `ops promote-endpoint` finds it: ``<folder>/<target>.json``;
    ``result.recorded`` names that file."""
    path = folder / f"{result.target}.json"
    result.recorded = str(path)
    return write_atomic(path, result.to_json(), indent=2)
