"""The SageMaker API operations the local cloud answers itself (everything else goes to moto).

Requests and responses are the AWS JSON 1.1 protocol's documents, so boto3, the AWS CLI and the
SageMaker SDK parse them unchanged. Training jobs run through `TrainingRunner`; tuning jobs run
trials as training jobs, proposed by optuna (TPE for ``Bayesian``, random sampling for
``Random``, a grid over categorical ranges for ``Grid``).
"""

from __future__ import annotations

import math
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime

import optuna

from ops.localcloud.protocol import AwsError, now, sagemaker_arn, validation_error
from ops.localcloud.training import TrainingJob, TrainingRunner

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
TUNING_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
NOT_FOUND = "Requested resource not found."
OBJECTIVE_HYPERPARAMETER = "_tuning_objective_metric"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _require(request: dict, *keys: str) -> None:
    missing = [key for key in keys if request.get(key) in (None, "", [], {})]
    if missing:
        raise validation_error(f"1 validation error detected: missing required field {missing[0]}")


def _check_name(name: str, pattern: re.Pattern, what: str) -> None:
    if not isinstance(name, str) or not pattern.match(name):
        raise validation_error(
            f"1 validation error detected: Value '{name}' at '{what}' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {pattern.pattern}"
        )


def _validate_job(request: dict, definition: bool = False) -> None:
    """The checks AWS makes on a training job request (or a tuning job's job definition)."""
    required = [
        "AlgorithmSpecification",
        "RoleArn",
        "OutputDataConfig",
        "ResourceConfig",
        "StoppingCondition",
    ]
    _require(request, *required if definition else ["TrainingJobName", *required])
    if not definition:
        _check_name(request["TrainingJobName"], NAME_PATTERN, "trainingJobName")
    if not str(request["OutputDataConfig"].get("S3OutputPath", "")).startswith("s3://"):
        raise validation_error("OutputDataConfig.S3OutputPath must be an s3:// URI")
    count = request["ResourceConfig"].get("InstanceCount")
    if not isinstance(count, int) or count < 1:
        raise validation_error("ResourceConfig.InstanceCount must be a positive integer")
    for metric in request["AlgorithmSpecification"].get("MetricDefinitions", []):
        try:
            re.compile(metric["Regex"])
        except (KeyError, re.error) as exc:
            raise validation_error(f"metric {metric.get('Name')}: bad Regex: {exc}") from exc


# -- tuning ---------------------------------------------------------------------------------


@dataclass
class ParameterSpace:
    """The declared ranges as optuna distributions, and the way back to SageMaker strings."""

    distributions: dict[str, optuna.distributions.BaseDistribution]
    reverse_log: set[str]
    integers: set[str]

    @classmethod
    def from_ranges(cls, ranges: dict) -> ParameterSpace:
        distributions: dict[str, optuna.distributions.BaseDistribution] = {}
        reverse_log: set[str] = set()
        integers: set[str] = set()
        for kind in ("ContinuousParameterRanges", "IntegerParameterRanges"):
            for spec in ranges.get(kind, []):
                name = spec["Name"]
                try:
                    low, high = float(spec["MinValue"]), float(spec["MaxValue"])
                except (KeyError, ValueError) as exc:
                    raise validation_error(
                        f"range {name}: MinValue/MaxValue must be numbers"
                    ) from exc
                if low > high:
                    raise validation_error(f"range {name}: MinValue must not exceed MaxValue")
                scaling = spec.get("ScalingType", "Auto")
                if scaling == "Logarithmic" and low <= 0:
                    raise validation_error(f"range {name}: logarithmic scaling needs MinValue > 0")
                if scaling == "ReverseLogarithmic":
                    if kind == "IntegerParameterRanges" or not 0 <= low < high < 1:
                        raise validation_error(
                            f"range {name}: reverse logarithmic scaling needs a continuous range "
                            "within [0, 1)"
                        )
                    reverse_log.add(name)
                    # Sample 1 - x on a log scale: dense near the top of the range.
                    distributions[name] = optuna.distributions.FloatDistribution(
                        1 - high, 1 - low, log=True
                    )
                    continue
                log = scaling == "Logarithmic"
                if kind == "IntegerParameterRanges":
                    integers.add(name)
                    distributions[name] = optuna.distributions.IntDistribution(
                        int(low), int(high), log=log
                    )
                else:
                    distributions[name] = optuna.distributions.FloatDistribution(low, high, log=log)
        for spec in ranges.get("CategoricalParameterRanges", []):
            values = spec.get("Values") or []
            if not values:
                raise validation_error(f"range {spec.get('Name')}: Values must not be empty")
            distributions[spec["Name"]] = optuna.distributions.CategoricalDistribution(list(values))
        if not distributions:
            raise validation_error("ParameterRanges declares no ranges")
        return cls(distributions, reverse_log, integers)

    def to_hyperparameters(self, params: dict) -> dict[str, str]:
        values: dict[str, str] = {}
        for name, value in params.items():
            if name in self.reverse_log:
                value = 1 - value
            if name in self.integers:
                values[name] = str(int(value))
            elif isinstance(value, float):
                values[name] = repr(value)
            else:
                values[name] = str(value)
        return values

    def grid_size(self) -> int:
        if not all(
            isinstance(d, optuna.distributions.CategoricalDistribution)
            for d in self.distributions.values()
        ):
            raise validation_error("the Grid strategy takes categorical ranges only")
        return math.prod(len(d.choices) for d in self.distributions.values())


@dataclass
class TuningJob:
    name: str
    region: str
    request: dict
    space: ParameterSpace
    study: optuna.Study
    objective_type: str
    objective_metric: str
    max_jobs: int
    max_parallel: int
    created: datetime = field(default_factory=now)
    status: str = "InProgress"
    ended: datetime | None = None
    failure_reason: str | None = None
    trials: list[TrainingJob] = field(default_factory=list)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def arn(self) -> str:
        return sagemaker_arn(self.region, "hyper-parameter-tuning-job", self.name)

    def objective_of(self, job: TrainingJob) -> float | None:
        if job.status != "Completed":
            return None
        value = job.metrics.get(self.objective_metric)
        return value if value is not None and math.isfinite(value) else None

    def trial_summary(self, job: TrainingJob) -> dict:
        tuned_names = self.space.distributions
        hps = job.request.get("HyperParameters", {})
        summary = {
            "TrainingJobName": job.name,
            "TrainingJobArn": job.arn,
            "TuningJobName": self.name,
            "CreationTime": job.created,
            "TrainingStartTime": job.started,
            "TrainingEndTime": job.ended,
            "TrainingJobStatus": job.status,
            "TunedHyperParameters": {k: v for k, v in hps.items() if k in tuned_names},
            "FailureReason": job.failure_reason,
        }
        objective = self.objective_of(job)
        if objective is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": self.objective_type,
                "MetricName": self.objective_metric,
                "Value": objective,
            }
        summary["ObjectiveStatus"] = self.objective_status(job)
        return summary

    def objective_status(self, job: TrainingJob) -> str:
        if self.objective_of(job) is not None:
            return "Succeeded"
        return "Pending" if job.status in ("InProgress", "Stopping") else "Failed"

    def best(self) -> TrainingJob | None:
        scored = [(self.objective_of(job), job) for job in self.trials]
        scored = [(value, job) for value, job in scored if value is not None]
        if not scored:
            return None
        pick = min if self.objective_type == "Minimize" else max
        return pick(scored, key=lambda pair: pair[0])[1]

    def describe(self) -> dict:
        with self.lock:
            trials = list(self.trials)
            status = self.status
            ended = self.ended
        counts = {
            "Completed": 0,
            "InProgress": 0,
            "RetryableError": 0,
            "NonRetryableError": 0,
            "Stopped": 0,
        }
        objectives = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for job in trials:
            key = {"Failed": "NonRetryableError", "Stopping": "InProgress"}.get(
                job.status, job.status
            )
            counts[key] += 1
            objectives[self.objective_status(job)] += 1
        response = {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobArn": self.arn,
            "HyperParameterTuningJobConfig": self.request["HyperParameterTuningJobConfig"],
            "TrainingJobDefinition": self.request["TrainingJobDefinition"],
            "HyperParameterTuningJobStatus": status,
            "CreationTime": self.created,
            "HyperParameterTuningEndTime": ended,
            "LastModifiedTime": ended or now(),
            "TrainingJobStatusCounters": counts,
            "ObjectiveStatusCounters": objectives,
            "FailureReason": self.failure_reason,
        }
        best = self.best()
        if best is not None:
            response["BestTrainingJob"] = self.trial_summary(best)
        return response

    def summary(self) -> dict:
        described = self.describe()
        keys = (
            "HyperParameterTuningJobName",
            "HyperParameterTuningJobArn",
            "HyperParameterTuningJobStatus",
            "CreationTime",
            "HyperParameterTuningEndTime",
            "LastModifiedTime",
            "TrainingJobStatusCounters",
            "ObjectiveStatusCounters",
        )
        summary = {key: described[key] for key in keys if described.get(key) is not None}
        config = self.request["HyperParameterTuningJobConfig"]
        summary["Strategy"] = config["Strategy"]
        summary["ResourceLimits"] = config["ResourceLimits"]
        return summary


# -- the service ----------------------------------------------------------------------------


class SageMaker:
    """Training and tuning jobs, keyed by (region, name)."""

    OPERATIONS = (
        "CreateTrainingJob",
        "DescribeTrainingJob",
        "StopTrainingJob",
        "ListTrainingJobs",
        "CreateHyperParameterTuningJob",
        "DescribeHyperParameterTuningJob",
        "StopHyperParameterTuningJob",
        "ListHyperParameterTuningJobs",
        "ListTrainingJobsForHyperParameterTuningJob",
    )

    def __init__(self, runner: TrainingRunner):
        self.runner = runner
        self.training: dict[tuple[str, str], TrainingJob] = {}
        self.tuning: dict[tuple[str, str], TuningJob] = {}
        self.lock = threading.Lock()

    def handle(self, operation: str, region: str, request: dict) -> dict:
        method = getattr(self, "_" + re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
        return method(region, request)

    def shutdown(self) -> None:
        """Stop every running job (the local cloud is going down)."""
        for job in list(self.training.values()):
            if job.status == "InProgress":
                self.runner.stop(job)

    # -- training jobs ------------------------------------------------------------------

    def _create_training_job(self, region: str, request: dict) -> dict:
        job = self._new_training_job(region, request)
        self.runner.start(job)
        return {"TrainingJobArn": job.arn}

    def _new_training_job(self, region: str, request: dict, tuning: TuningJob | None = None):
        _validate_job(request)
        name = request["TrainingJobName"]
        with self.lock:
            if (region, name) in self.training:
                raise AwsError(
                    "ResourceInUse",
                    "Training job names must be unique within an AWS account and region, and a "
                    f"training job with this name already exists ({name})",
                )
            job = TrainingJob(name=name, region=region, request=request)
            if tuning is not None:
                job.tuning_job_arn = tuning.arn
                job.cpu_share = tuning.max_parallel
            self.training[(region, name)] = job
        return job

    def _training_job(self, region: str, name: str) -> TrainingJob:
        job = self.training.get((region, name or ""))
        if job is None:
            raise validation_error(NOT_FOUND)
        return job

    def _describe_training_job(self, region: str, request: dict) -> dict:
        return self._training_job(region, request.get("TrainingJobName")).describe()

    def _stop_training_job(self, region: str, request: dict) -> dict:
        job = self._training_job(region, request.get("TrainingJobName"))
        if job.status != "InProgress":
            raise validation_error(
                f"The training job {job.name} is not in progress (status {job.status})"
            )
        self.runner.stop(job)
        return {}

    def _list_training_jobs(self, region: str, request: dict) -> dict:
        jobs = [job for (r, _), job in list(self.training.items()) if r == region]
        items = _filter_sort(
            [job.summary() for job in jobs], request, "TrainingJobName", "TrainingJobStatus"
        )
        page, token = _page(items, request)
        return {"TrainingJobSummaries": page, **token}

    # -- tuning jobs --------------------------------------------------------------------

    def _create_hyper_parameter_tuning_job(self, region: str, request: dict) -> dict:
        _require(request, "HyperParameterTuningJobName", "HyperParameterTuningJobConfig")
        name = request["HyperParameterTuningJobName"]
        _check_name(name, TUNING_NAME_PATTERN, "hyperParameterTuningJobName")
        if request.get("TrainingJobDefinitions"):
            raise validation_error(
                "TrainingJobDefinitions (several algorithms) is not supported "
                "locally; send one TrainingJobDefinition"
            )
        _require(request, "TrainingJobDefinition")
        config = request["HyperParameterTuningJobConfig"]
        definition = request["TrainingJobDefinition"]
        _validate_job(definition, definition=True)  # now, not when the first trial starts
        strategy = config.get("Strategy", "Bayesian")
        objective = config.get("HyperParameterTuningJobObjective") or {}
        metric = objective.get("MetricName")
        objective_type = objective.get("Type")
        if objective_type not in ("Minimize", "Maximize") or not metric:
            raise validation_error(
                "HyperParameterTuningJobObjective needs Type (Minimize or Maximize) and MetricName"
            )
        metric_names = {
            d["Name"]
            for d in definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
        }
        if metric not in metric_names:
            raise validation_error(
                f"The objective metric {metric!r} is not among the training job definition's "
                f"MetricDefinitions ({sorted(metric_names)})"
            )
        limits = config.get("ResourceLimits") or {}
        max_jobs = limits.get("MaxNumberOfTrainingJobs")
        max_parallel = limits.get("MaxParallelTrainingJobs")
        space = ParameterSpace.from_ranges(
            definition.get("HyperParameterRanges") or config.get("ParameterRanges") or {}
        )
        seed = config.get("RandomSeed")
        if strategy == "Bayesian":
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=min(10, max(2, (max_jobs or 10) // 3))
            )
        elif strategy == "Random":
            sampler = optuna.samplers.RandomSampler(seed=seed)
        elif strategy == "Grid":
            size = space.grid_size()
            max_jobs = size if max_jobs is None else min(max_jobs, size)
            grid = {n: d.choices for n, d in space.distributions.items()}
            sampler = optuna.samplers.GridSampler(grid, seed=seed)
        else:
            raise validation_error(
                f"Strategy {strategy!r} is not supported locally; use Bayesian, Random or Grid"
            )
        if not isinstance(max_jobs, int) or max_jobs < 1:
            raise validation_error("ResourceLimits.MaxNumberOfTrainingJobs must be >= 1")
        if not isinstance(max_parallel, int) or max_parallel < 1:
            raise validation_error("ResourceLimits.MaxParallelTrainingJobs must be >= 1")
        direction = "minimize" if objective_type == "Minimize" else "maximize"
        tuning = TuningJob(
            name=name,
            region=region,
            request=request,
            space=space,
            study=optuna.create_study(direction=direction, sampler=sampler),
            objective_type=objective_type,
            objective_metric=metric,
            max_jobs=max_jobs,
            max_parallel=min(max_parallel, max_jobs),
        )
        with self.lock:
            if (region, name) in self.tuning:
                raise AwsError("ResourceInUse", f"Hyperparameter tuning job {name} already exists")
            self.tuning[(region, name)] = tuning
        threading.Thread(
            target=self._run_tuning, args=(tuning,), daemon=True, name=f"tuning-{name}"
        ).start()
        return {"HyperParameterTuningJobArn": tuning.arn}

    def _run_tuning(self, tuning: TuningJob) -> None:
        done = threading.Semaphore(0)
        running = 0
        launched = 0
        try:
            while True:
                while (
                    running < tuning.max_parallel
                    and launched < tuning.max_jobs
                    and not tuning.stop_requested.is_set()
                ):
                    self._launch_trial(tuning, launched + 1, done)
                    launched += 1
                    running += 1
                if running == 0:
                    break
                done.acquire()
                running -= 1
        except Exception as exc:  # could not even launch: report it on the tuning job
            with tuning.lock:
                tuning.failure_reason = f"{type(exc).__name__}: {exc}"[:1024]
            for job in tuning.trials:
                if job.status == "InProgress":
                    self.runner.stop(job)
        with tuning.lock:
            if tuning.stop_requested.is_set():
                tuning.status = "Stopped"
            elif tuning.failure_reason is None and tuning.best() is None:
                tuning.status = "Failed"
                tuning.failure_reason = (
                    f"All training jobs failed or reported no {tuning.objective_metric!r} metric. "
                    "See the training jobs' FailureReason and logs."
                )
            else:
                tuning.status = "Failed" if tuning.failure_reason else "Completed"
            tuning.ended = now()

    def _launch_trial(self, tuning: TuningJob, index: int, done: threading.Semaphore) -> None:
        trial = tuning.study.ask(tuning.space.distributions)
        definition = tuning.request["TrainingJobDefinition"]
        hyperparameters = {
            **(definition.get("StaticHyperParameters") or {}),
            **tuning.space.to_hyperparameters(trial.params),
            OBJECTIVE_HYPERPARAMETER: tuning.objective_metric,
        }
        name = f"{tuning.name}-{index:03d}-{secrets.token_hex(4)}"
        request = {
            "TrainingJobName": name,
            "HyperParameters": hyperparameters,
            **{
                key: value
                for key, value in definition.items()
                if key
                not in (
                    "StaticHyperParameters",
                    "HyperParameterRanges",
                    "DefinitionName",
                    "TuningObjective",
                )
            },
        }
        if request.get("CheckpointConfig"):
            # As on AWS: each trial checkpoints under its own name, never resuming another's.
            checkpoint = dict(request["CheckpointConfig"])
            checkpoint["S3Uri"] = checkpoint["S3Uri"].rstrip("/") + "/" + name
            request["CheckpointConfig"] = checkpoint
        job = self._new_training_job(tuning.region, request, tuning)
        with tuning.lock:
            tuning.trials.append(job)

        def finished(job: TrainingJob) -> None:
            value = tuning.objective_of(job)
            if value is None:
                tuning.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                tuning.study.tell(trial, value)
            done.release()

        self.runner.start(job, on_done=finished)

    def _tuning_job(self, region: str, name: str) -> TuningJob:
        tuning = self.tuning.get((region, name or ""))
        if tuning is None:
            raise AwsError(
                "ResourceNotFound", f"Amazon SageMaker can't find a tuning job named {name}"
            )
        return tuning

    def _describe_hyper_parameter_tuning_job(self, region: str, request: dict) -> dict:
        return self._tuning_job(region, request.get("HyperParameterTuningJobName")).describe()

    def _stop_hyper_parameter_tuning_job(self, region: str, request: dict) -> dict:
        tuning = self._tuning_job(region, request.get("HyperParameterTuningJobName"))
        with tuning.lock:
            if tuning.status != "InProgress":
                raise validation_error(f"The tuning job {tuning.name} is not in progress")
            tuning.status = "Stopping"
            tuning.stop_requested.set()
            trials = list(tuning.trials)
        for job in trials:
            if job.status == "InProgress":
                self.runner.stop(job)
        return {}

    def _list_hyper_parameter_tuning_jobs(self, region: str, request: dict) -> dict:
        jobs = [job for (r, _), job in list(self.tuning.items()) if r == region]
        items = _filter_sort(
            [job.summary() for job in jobs],
            request,
            "HyperParameterTuningJobName",
            "HyperParameterTuningJobStatus",
        )
        page, token = _page(items, request)
        return {"HyperParameterTuningJobSummaries": page, **token}

    def _list_training_jobs_for_hyper_parameter_tuning_job(self, region: str, request: dict):
        tuning = self._tuning_job(region, request.get("HyperParameterTuningJobName"))
        with tuning.lock:
            trials = list(tuning.trials)
        items = [tuning.trial_summary(job) for job in trials]
        if request.get("StatusEquals"):
            items = [i for i in items if i["TrainingJobStatus"] == request["StatusEquals"]]
        sort_by = request.get("SortBy", "CreationTime")
        descending = request.get("SortOrder", "Descending") == "Descending"
        if sort_by == "FinalObjectiveMetricValue":
            scored = [i for i in items if "FinalHyperParameterTuningJobObjectiveMetric" in i]
            unscored = [i for i in items if i not in scored]
            better_first = tuning.objective_type == "Maximize"
            scored.sort(
                key=lambda i: i["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
                reverse=better_first if request.get("SortOrder") is None else descending,
            )
            items = scored + unscored
        else:
            key = (
                "TrainingJobName"
                if sort_by == "Name"
                else ("TrainingJobStatus" if sort_by == "Status" else "CreationTime")
            )
            items.sort(key=lambda i: i[key], reverse=descending)
        page, token = _page(items, request)
        return {"TrainingJobSummaries": page, **token}


def _filter_sort(items: list[dict], request: dict, name_key: str, status_key: str) -> list[dict]:
    if request.get("NameContains"):
        needle = request["NameContains"].lower()
        items = [i for i in items if needle in i[name_key].lower()]
    if request.get("StatusEquals"):
        items = [i for i in items if i[status_key] == request["StatusEquals"]]
    for key, compare in (
        ("CreationTimeAfter", lambda a, b: a > b),
        ("CreationTimeBefore", lambda a, b: a < b),
        ("LastModifiedTimeAfter", lambda a, b: a > b),
        ("LastModifiedTimeBefore", lambda a, b: a < b),
    ):
        if request.get(key) is not None:
            bound = _timestamp(request[key])
            field_name = "CreationTime" if key.startswith("Creation") else "LastModifiedTime"
            items = [i for i in items if compare(i[field_name].timestamp(), bound)]
    sort_by = request.get("SortBy", "CreationTime")
    key = {"Name": name_key, "Status": status_key}.get(sort_by, "CreationTime")
    items.sort(key=lambda i: i[key], reverse=request.get("SortOrder", "Descending") == "Descending")
    return items


def _timestamp(value) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _page(items: list[dict], request: dict) -> tuple[list[dict], dict]:
    size = int(request.get("MaxResults") or 100)
    start = int(request.get("NextToken") or 0)
    page = items[start : start + size]
    token = {"NextToken": str(start + size)} if start + size < len(items) else {}
    return page, token
