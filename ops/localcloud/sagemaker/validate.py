"""The checks on SageMaker requests that botocore's service model cannot express, and AWS's
defaults for the members it leaves optional.

The front door has already checked each request against the model (`ops.localcloud.shapes`:
required members, types, enums, patterns, ranges). What is left here: rules between members
(channel names unique, the tuning objective among the metric definitions), what a job needs to
run at all, what runs only on AWS (``s3://`` only, no serverless jobs, no heterogeneous
clusters, the tuning strategies optuna stands in for) and the defaults AWS fills in, written
into the request so that the job's record describes what AWS describes.

Failures are `InvalidRequest` (the API answers ValidationException).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ops.localcloud.sagemaker.records import InvalidRequest

STRATEGIES = ("Bayesian", "Random", "Grid")
# "The default value is 1 day." (StoppingCondition.MaxRuntimeInSeconds in the service model)
DEFAULT_MAX_RUNTIME_S = 86400


def training_job(request: dict, definition: bool = False) -> None:
    """A CreateTrainingJob request (or, with ``definition``, a tuning job's
    HyperParameterTrainingJobDefinition), with AWS's defaults filled in."""
    if request.get("ServerlessJobConfig"):
        raise InvalidRequest("ServerlessJobConfig (serverless training) is not supported locally")
    if not request.get("AlgorithmSpecification"):
        # Optional in the model for serverless jobs only; AWS documents no default.
        raise InvalidRequest(
            "AlgorithmSpecification is required: it names the training image or algorithm to "
            "run (only serverless training jobs, with ServerlessJobConfig, leave it out)"
        )
    _resources(request, definition)
    stopping = request.setdefault("StoppingCondition", {})
    stopping.setdefault("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME_S)
    _s3_uri(request["OutputDataConfig"]["S3OutputPath"], "OutputDataConfig.S3OutputPath")
    if request.get("CheckpointConfig"):
        _s3_uri(request["CheckpointConfig"]["S3Uri"], "CheckpointConfig.S3Uri")
    _channels(request.get("InputDataConfig") or [])
    for metric in request["AlgorithmSpecification"].get("MetricDefinitions") or []:
        try:
            re.compile(metric["Regex"])  # the local cloud applies them with Python's re
        except re.error as exc:
            raise InvalidRequest(f"metric {metric['Name']}: bad Regex: {exc}") from exc


def _resources(request: dict, definition: bool) -> None:
    """``ResourceConfig``, which the model leaves optional for serverless jobs (and, in a tuning
    job's definition, for ``HyperParameterTuningResourceConfig``); AWS documents no default, and
    a job needs to know how many instances run it."""
    alternative = request.get("HyperParameterTuningResourceConfig") if definition else None
    if not request.get("ResourceConfig") and alternative:
        if alternative.get("InstanceConfigs"):
            raise InvalidRequest(
                "HyperParameterTuningResourceConfig.InstanceConfigs (several instance types) is "
                "not supported locally; give InstanceType and InstanceCount"
            )
        request["ResourceConfig"] = {
            k: alternative[k]
            for k in ("InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId")
            if k in alternative
        }
    resources = request.get("ResourceConfig")
    if not resources:
        if definition:
            raise InvalidRequest(
                "ResourceConfig or HyperParameterTuningResourceConfig is required: it says "
                "which instances, and how many, run each training job"
            )
        raise InvalidRequest(
            "ResourceConfig is required: it says which instances, and how many, run the job "
            "(only serverless training jobs, with ServerlessJobConfig, leave it out)"
        )
    if resources.get("InstanceGroups"):
        raise InvalidRequest(
            "ResourceConfig.InstanceGroups (heterogeneous clusters) is not supported locally; "
            "give InstanceType and InstanceCount"
        )
    missing = [k for k in ("InstanceType", "InstanceCount") if resources.get(k) is None]
    if missing:
        raise InvalidRequest(f"ResourceConfig needs {' and '.join(missing)}")
    # The model allows 0 for both since InstanceGroups and instance types with NVMe storage
    # (whose volume size SageMaker picks) came; a job of one instance type needs at least one
    # instance and, on EBS-only types, a volume. Earlier models said so: min 1.
    for key in ("InstanceCount", "VolumeSizeInGB"):
        if resources.get(key) is not None and resources[key] < 1:
            path = "resourceConfig." + key[0].lower() + key[1:]
            raise InvalidRequest(
                f"1 validation error detected: Value '{resources[key]}' at '{path}' failed to "
                "satisfy constraint: Member must have value greater than or equal to 1"
            )


def _channels(channels: list[dict]) -> None:
    seen: set[str] = set()
    for channel in channels:
        name = channel["ChannelName"]
        if name in seen:  # AWS refuses a repeated channel name
            raise InvalidRequest(
                f"Channel names must be unique: InputDataConfig repeats channel '{name}'"
            )
        seen.add(name)
        source = (channel.get("DataSource") or {}).get("S3DataSource")
        if source:
            _s3_uri(source["S3Uri"], f"InputDataConfig channel '{name}' S3Uri")


def _s3_uri(uri: str, what: str) -> None:
    """The model also allows ``https://`` S3 URLs; the local cloud's S3 is reached by bucket."""
    if not uri.startswith("s3://"):
        raise InvalidRequest(f"{what} must be an s3:// URI locally: {uri!r}")


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
    if request.get("TrainingJobDefinitions"):
        raise InvalidRequest(
            "TrainingJobDefinitions (several algorithms) is not supported "
            "locally; send one TrainingJobDefinition"
        )
    definition = request.get("TrainingJobDefinition")
    if not definition:
        raise InvalidRequest("TrainingJobDefinition is required (or TrainingJobDefinitions)")
    config = request["HyperParameterTuningJobConfig"]
    training_job(definition, definition=True)  # now, not when the first trial starts
    objective = config.get("HyperParameterTuningJobObjective")
    if not objective:
        raise InvalidRequest(
            "HyperParameterTuningJobObjective is required: the search needs a metric to "
            "minimise or maximise"
        )
    metric = objective["MetricName"]
    metric_names = {
        d["Name"] for d in definition["AlgorithmSpecification"].get("MetricDefinitions") or []
    }
    if metric not in metric_names:
        raise InvalidRequest(
            f"The objective metric {metric!r} is not among the training job definition's "
            f"MetricDefinitions ({sorted(metric_names)})"
        )
    strategy = config["Strategy"]
    if strategy not in STRATEGIES:
        raise InvalidRequest(
            f"Strategy {strategy!r} is not supported locally; use Bayesian, Random or Grid"
        )
    limits = config["ResourceLimits"]
    return TuningSettings(
        name=request["HyperParameterTuningJobName"],
        strategy=strategy,
        objective_type=objective["Type"],
        objective_metric=metric,
        max_jobs=limits.get("MaxNumberOfTrainingJobs"),
        max_parallel=limits["MaxParallelTrainingJobs"],
        ranges=definition.get("HyperParameterRanges") or config.get("ParameterRanges") or {},
        seed=config.get("RandomSeed"),
    )


def limits(max_jobs: object, max_parallel: object) -> None:
    if not isinstance(max_jobs, int) or max_jobs < 1:
        raise InvalidRequest("ResourceLimits.MaxNumberOfTrainingJobs must be >= 1")
    if not isinstance(max_parallel, int) or max_parallel < 1:
        raise InvalidRequest("ResourceLimits.MaxParallelTrainingJobs must be >= 1")
