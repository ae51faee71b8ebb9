"""`ops train`: data to S3, a hyperparameter tuning job, then training with the best values.

Everything goes through the SageMaker API of a `Target` (the local cloud or AWS), with the
requests the SageMaker training toolkit understands (``sagemaker_program`` and
``sagemaker_submit_directory`` hyperparameters, a source tarball of ``ml/``), so the same
requests run in the AWS PyTorch containers and in the local cloud.
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

import ml
from ml.layout import DataLayoutError, validate_layout
from ops import s3
from ops.errors import OpsError
from ops.jsonfile import write_atomic
from ops.metrics import METRIC_DEFINITIONS
from ops.target import Target

OBJECTIVE_METRIC = "Test Loss"
ENTRY_POINT = "ml/train.py"
# AWS Deep Learning Container for PyTorch training (account 763104351884 serves most regions).
DLC_ACCOUNT = "763104351884"
DLC_TAG_CPU = "2.8.0-cpu-py312-ubuntu22.04-sagemaker"
DLC_TAG_GPU = "2.8.0-gpu-py312-cu129-ubuntu22.04-sagemaker"
GPU_FAMILIES = ("ml.p", "ml.g")
TERMINAL = {"Completed", "Failed", "Stopped"}
# Used when tuning is skipped and no value is given: the original project's tuning result.
UNTUNED_DEFAULTS = {"learning-rate": "0.00834462420525608", "batch-size": "32"}


@dataclass
class Profile:
    """Static hyperparameters (every trial and the final job get them)."""

    arch: str
    weights: str
    image_size: int
    epochs: int

    def hyperparameters(self) -> dict[str, str]:
        return {
            "arch": self.arch,
            "weights": self.weights,
            "image-size": str(self.image_size),
            "epochs": str(self.epochs),
        }


# Locally the default is a quick run that learns the synthetic set on a laptop CPU; on AWS,
# the real model: pretrained ResNet-50 at 224 px.
PROFILES = {
    "local": Profile(arch="resnet18", weights="none", image_size=64, epochs=8),
    "aws": Profile(arch="resnet50", weights="imagenet", image_size=224, epochs=5),
}


@dataclass
class TrainPlan:
    data: Path | None = None  # a local dogImages folder to upload
    data_uri: str | None = None  # or data already in S3
    profile: Profile = field(default_factory=lambda: PROFILES["local"])
    tune: bool = True
    max_jobs: int = 2
    max_parallel: int = 1
    strategy: str = "Bayesian"
    learning_rate_range: tuple[float, float] = (0.001, 0.1)
    batch_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    hyperparameters: dict[str, str] = field(default_factory=dict)  # explicit, win over tuning
    instance_count: int = 1
    tuning_instance_type: str = "ml.m5.xlarge"
    training_instance_type: str = "ml.m5.2xlarge"
    image_uri: str | None = None
    max_runtime_s: int = 24 * 3600
    random_seed: int | None = None


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

    def to_json(self) -> dict:
        return asdict(self)


Progress = Callable[[str, dict], None]


def _stamp() -> str:
    """Time to the second plus 4 hex digits: two runs in the same second do not collide, and
    ``dogops-hpo-<stamp>`` stays within the 32 characters a tuning job name may have."""
    return datetime.now(UTC).strftime("%y%m%d-%H%M%S-") + secrets.token_hex(2)


def image_uri(region: str, instance_type: str) -> str:
    tag = DLC_TAG_GPU if instance_type.startswith(GPU_FAMILIES) else DLC_TAG_CPU
    return f"{DLC_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/pytorch-training:{tag}"


def source_tarball() -> bytes:
    """``ml/`` as SageMaker's ``sourcedir.tar.gz``: the entry point is ``ml/train.py``."""
    package = Path(ml.__file__).resolve().parent
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(package.rglob("*.py")):
            if "__pycache__" not in path.parts:
                tar.add(path, arcname=f"ml/{path.relative_to(package).as_posix()}")
    return buffer.getvalue()


def stage_data(target: Target, plan: TrainPlan, progress: Progress) -> str:
    if plan.data_uri:
        return plan.data_uri.rstrip("/")
    if plan.data is None:
        raise OpsError("give a data folder (--data) or an S3 URI (--data-uri)")
    try:
        layout = validate_layout(plan.data)
    except DataLayoutError as exc:
        raise OpsError(f"{plan.data}: {exc}") from exc
    uri = f"s3://{target.bucket}/data/{plan.data.resolve().name}"
    progress("upload", {"uri": uri, "images": sum(layout.counts.values())})
    uploaded, skipped = s3.upload_tree(plan.data, uri, client=target.client("s3"))
    progress("uploaded", {"uri": uri, "uploaded": uploaded, "skipped": skipped})
    return uri


def stage_source(target: Target, run: str) -> str:
    key = f"code/{run}/sourcedir.tar.gz"
    try:
        target.client("s3").put_object(Bucket=target.bucket, Key=key, Body=source_tarball())
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"could not upload the code to s3://{target.bucket}/{key}: {exc}") from exc
    return f"s3://{target.bucket}/{key}"


def _job_definition(
    target: Target,
    plan: TrainPlan,
    data_uri: str,
    source_uri: str,
    instance_type: str,
    instance_count: int,
    run: str,
) -> dict:
    toolkit = {
        # JSON-encoded, as the SageMaker SDKs send them; the training toolkit decodes them.
        "sagemaker_program": json.dumps(ENTRY_POINT),
        "sagemaker_submit_directory": json.dumps(source_uri),
        "sagemaker_region": json.dumps(target.region),
    }
    if instance_count > 1:
        toolkit["sagemaker_torch_distributed_enabled"] = "true"
    return {
        "AlgorithmSpecification": {
            "TrainingImage": plan.image_uri or image_uri(target.region, instance_type),
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        "RoleArn": target.sagemaker_role_arn,
        "InputDataConfig": [
            {
                "ChannelName": "training",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": data_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{target.bucket}/models"},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": plan.max_runtime_s},
        # Every epoch's checkpoint; a restarted job resumes from it (ml/train.py --resume auto).
        "CheckpointConfig": {"S3Uri": f"s3://{target.bucket}/checkpoints/{run}"},
        "StaticHyperParameters": {
            **toolkit,
            **plan.profile.hyperparameters(),
            **plan.hyperparameters,
        },
    }


def tuning_request(
    target: Target, plan: TrainPlan, data_uri: str, source_uri: str, name: str
) -> dict:
    definition = _job_definition(
        target, plan, data_uri, source_uri, plan.tuning_instance_type, 1, name
    )
    # Trials must not resume from each other's checkpoints.
    definition.pop("CheckpointConfig")
    tuned = {
        "ContinuousParameterRanges": [],
        "IntegerParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    if "learning-rate" not in plan.hyperparameters:
        low, high = plan.learning_rate_range
        tuned["ContinuousParameterRanges"].append(
            {
                "Name": "learning-rate",
                "MinValue": repr(low),
                "MaxValue": repr(high),
                "ScalingType": "Logarithmic",
            }
        )
    if "batch-size" not in plan.hyperparameters:
        tuned["CategoricalParameterRanges"].append(
            {
                "Name": "batch-size",
                "Values": [str(b) for b in plan.batch_sizes],
            }
        )
    if not any(tuned.values()):
        raise OpsError(
            "nothing to tune: learning-rate and batch-size are both fixed; use --skip-tuning"
        )
    config = {
        "Strategy": plan.strategy,
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": OBJECTIVE_METRIC},
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": plan.max_jobs,
            "MaxParallelTrainingJobs": plan.max_parallel,
        },
        "ParameterRanges": tuned,
        "TrainingJobEarlyStoppingType": "Off",
    }
    if plan.random_seed is not None:
        config["RandomSeed"] = plan.random_seed
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": definition,
    }


def training_request(
    target: Target,
    plan: TrainPlan,
    data_uri: str,
    source_uri: str,
    name: str,
    hyperparameters: dict[str, str],
) -> dict:
    definition = _job_definition(
        target, plan, data_uri, source_uri, plan.training_instance_type, plan.instance_count, name
    )
    static = definition.pop("StaticHyperParameters")
    return {
        "TrainingJobName": name,
        # A restarted job (spot interruption, ...) continues from the synced checkpoint.
        "HyperParameters": {**static, "resume": "auto", **hyperparameters, **plan.hyperparameters},
        **definition,
    }


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
        data_uri = stage_data(target, plan, progress)
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
    data_uri = stage_data(target, plan, progress)
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
