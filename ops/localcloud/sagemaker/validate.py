"""The checks AWS makes on SageMaker requests before it accepts them, with AWS's messages.

Failures are `InvalidRequest` (the API answers ValidationException)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ops.localcloud.sagemaker.records import InvalidRequest

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
TUNING_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
STRATEGIES = ("Bayesian", "Random", "Grid")
_JOB_FIELDS = (
    "AlgorithmSpecification",
    "RoleArn",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
)


def require(request: dict, *keys: str) -> None:
    missing = [key for key in keys if request.get(key) in (None, "", [], {})]
    if missing:
        raise InvalidRequest(f"1 validation error detected: missing required field {missing[0]}")


def check_name(name: str, pattern: re.Pattern, what: str) -> None:
    if not isinstance(name, str) or not pattern.match(name):
        raise InvalidRequest(
            f"1 validation error detected: Value '{name}' at '{what}' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {pattern.pattern}"
        )


def training_job(request: dict, definition: bool = False) -> None:
    """A CreateTrainingJob request (or, with ``definition``, a tuning job's job definition)."""
    require(request, *_JOB_FIELDS if definition else ["TrainingJobName", *_JOB_FIELDS])
    if not definition:
        check_name(request["TrainingJobName"], NAME_PATTERN, "trainingJobName")
    if not str(request["OutputDataConfig"].get("S3OutputPath", "")).startswith("s3://"):
        raise InvalidRequest("OutputDataConfig.S3OutputPath must be an s3:// URI")
    count = request["ResourceConfig"].get("InstanceCount")
    if not isinstance(count, int) or count < 1:
        raise InvalidRequest("ResourceConfig.InstanceCount must be a positive integer")
    for metric in request["AlgorithmSpecification"].get("MetricDefinitions", []):
        try:
            re.compile(metric["Regex"])
        except (KeyError, re.error) as exc:
            raise InvalidRequest(f"metric {metric.get('Name')}: bad Regex: {exc}") from exc


@dataclass
class TuningSettings:
    """A CreateHyperParameterTuningJob request, checked, in the terms the search uses."""

    name: str
    strategy: str
    objective_type: str  # Minimize or Maximize
    objective_metric: str
    max_jobs: int | None  # None: Grid runs the whole grid
    max_parallel: int
    ranges: dict
    seed: int | None


def tuning_job(request: dict) -> TuningSettings:
    require(request, "HyperParameterTuningJobName", "HyperParameterTuningJobConfig")
    name = request["HyperParameterTuningJobName"]
    check_name(name, TUNING_NAME_PATTERN, "hyperParameterTuningJobName")
    if request.get("TrainingJobDefinitions"):
        raise InvalidRequest(
            "TrainingJobDefinitions (several algorithms) is not supported "
            "locally; send one TrainingJobDefinition"
        )
    require(request, "TrainingJobDefinition")
    config = request["HyperParameterTuningJobConfig"]
    definition = request["TrainingJobDefinition"]
    training_job(definition, definition=True)  # now, not when the first trial starts
    objective = config.get("HyperParameterTuningJobObjective") or {}
    metric = objective.get("MetricName")
    objective_type = objective.get("Type")
    if objective_type not in ("Minimize", "Maximize") or not metric:
        raise InvalidRequest(
            "HyperParameterTuningJobObjective needs Type (Minimize or Maximize) and MetricName"
        )
    metric_names = {
        d["Name"] for d in definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
    }
    if metric not in metric_names:
        raise InvalidRequest(
            f"The objective metric {metric!r} is not among the training job definition's "
            f"MetricDefinitions ({sorted(metric_names)})"
        )
    strategy = config.get("Strategy", "Bayesian")
    if strategy not in STRATEGIES:
        raise InvalidRequest(
            f"Strategy {strategy!r} is not supported locally; use Bayesian, Random or Grid"
        )
    limits = config.get("ResourceLimits") or {}
    return TuningSettings(
        name=name,
        strategy=strategy,
        objective_type=objective_type,
        objective_metric=metric,
        max_jobs=limits.get("MaxNumberOfTrainingJobs"),
        max_parallel=limits.get("MaxParallelTrainingJobs"),
        ranges=definition.get("HyperParameterRanges") or config.get("ParameterRanges") or {},
        seed=config.get("RandomSeed"),
    )


def limits(max_jobs: object, max_parallel: object) -> None:
    if not isinstance(max_jobs, int) or max_jobs < 1:
        raise InvalidRequest("ResourceLimits.MaxNumberOfTrainingJobs must be >= 1")
    if not isinstance(max_parallel, int) or max_parallel < 1:
        raise InvalidRequest("ResourceLimits.MaxParallelTrainingJobs must be >= 1")
