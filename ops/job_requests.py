"""The SageMaker requests `ops train` sends: a tuning job and a training job.

They are the requests the SageMaker training toolkit understands (``sagemaker_program`` and
``sagemaker_submit_directory`` hyperparameters, a source tarball of ``ml/``), so the same
requests run in the AWS PyTorch containers and in the local cloud.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ops.errors import OpsError
from ops.metrics import METRIC_DEFINITIONS
from ops.profile import Profile
from ops.staging import ENTRY_POINT
from ops.target import Target

OBJECTIVE_METRIC = "Test Loss"
# AWS Deep Learning Container for PyTorch training (account 763104351884 serves most regions).
DLC_ACCOUNT = "763104351884"
DLC_TAG_CPU = "2.8.0-cpu-py312-ubuntu22.04-sagemaker"
DLC_TAG_GPU = "2.8.0-gpu-py312-cu129-ubuntu22.04-sagemaker"
GPU_FAMILIES = ("ml.p", "ml.g")
# Used when tuning is skipped and no value is given: the original project's tuning result.
UNTUNED_DEFAULTS = {"learning-rate": "0.00834462420525608", "batch-size": "32"}


@dataclass
class TrainPlan:
    profile: Profile  # the target's (ops.target.train_defaults), with the user's overrides
    data: Path | None = None  # a local dogImages folder to upload
    data_uri: str | None = None  # or data already in S3
    tune: bool = True
    max_jobs: int = 2
    max_parallel: int = 1
    strategy: str = "Bayesian"
    hyperparameters: dict[str, str] = field(default_factory=dict)  # explicit, win over tuning
    instance_count: int = 1
    tuning_instance_type: str = "ml.m5.xlarge"
    training_instance_type: str = "ml.m5.2xlarge"
    image_uri: str | None = None
    max_runtime_s: int = 24 * 3600
    random_seed: int | None = None


def image_uri(region: str, instance_type: str) -> str:
    tag = DLC_TAG_GPU if instance_type.startswith(GPU_FAMILIES) else DLC_TAG_CPU
    return f"{DLC_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/pytorch-training:{tag}"


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
        low, high = plan.profile.learning_rates
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
                "Values": [str(b) for b in plan.profile.batch_sizes],
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
