"""SageMaker's records: training and tuning jobs, and the backend that owns them.

The backend is the only owner of the records and of the one lock that guards them. Runners
change a record through its narrow methods (`TrainingJob.mark_failed`, ...) and raise domain
errors (`OpsError` subclasses), never wire errors; `api` turns those into AWS error codes.

Records outlive the local cloud: every change to a job's status, secondary status or failure
reason marks it changed, and when the backend's lock is let go (`RecordLock`) each changed
record is saved whole (`to_dict`; `store` writes it), so even a crash leaves every job known.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import ClassVar

from ops.errors import OpsError
from ops.localcloud.wire import arn, now

TERMINAL = ("Completed", "Failed", "Stopped")
# What a saved job that was still running when the local cloud started again tells its user:
# an ordered stop would have ended it (`Stopped`, saying so), so the local cloud died with it.
LOCAL_CLOUD_DIED = (
    "The local cloud stopped without an ordered stop (a crash or SIGKILL) while the job was "
    "running. S3 objects, IAM changes and CloudWatch Logs events written since the local cloud "
    "last started were lost with it."
)
# A change to one of these marks a job to be saved (see `RecordLock`).
SAVED_ON_CHANGE = frozenset({"status", "secondary_status", "failure_reason"})
# Run-time state, not saved: what a restarted local cloud cannot have (processes, events, the
# lock) or rebuilds (a tuning job's trials, from their own records).
NOT_SAVED = frozenset({"lock", "stop_requested", "children", "trials"})


class InvalidRequest(OpsError):
    """The request cannot run as given (AWS: ValidationException)."""


class NameInUse(OpsError):
    """A job of that name exists (AWS: ResourceInUse)."""


class NotFound(OpsError):
    """No job of that kind and name (AWS: ValidationException or ResourceNotFound)."""

    def __init__(self, kind: str, name: str):
        super().__init__(f"no {kind} named {name}")
        self.kind = kind
        self.name = name


def sagemaker_arn(region: str, kind: str, name: str) -> str:
    return arn("sagemaker", region, f"{kind}/{name.lower()}")


@dataclass(kw_only=True)
class Job:
    """What training and tuning jobs share: who they are, what was asked, how they stand."""

    KIND: ClassVar[str]
    name: str
    region: str
    request: dict
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    created: datetime = field(default_factory=now)
    status: str = "InProgress"
    ended: datetime | None = None
    failure_reason: str | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def arn(self) -> str:
        return sagemaker_arn(self.region, self.KIND, self.name)

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        if name in SAVED_ON_CHANGE:
            changed = getattr(self.__dict__.get("lock"), "changed", None)
            if changed is not None:  # a record of a backend (a RecordLock), not a bare one
                changed(self)

    def to_dict(self) -> dict:
        """The record as JSON-able data (`encode`); see `from_dict`."""
        with self.lock:
            saved = {"kind": self.KIND}
            for spec in fields(self):
                if spec.name not in NOT_SAVED:
                    saved[spec.name] = encode(getattr(self, spec.name))
            return saved

    @classmethod
    def from_dict(cls, saved: dict) -> Job:
        """A record from `to_dict`'s data (a field it lacks takes its default)."""
        if saved.get("kind") != cls.KIND:
            raise ValueError(f"not a {cls.KIND} record: kind {saved.get('kind')!r}")
        values = {
            spec.name: decode(saved[spec.name])
            for spec in fields(cls)
            if spec.name not in NOT_SAVED and spec.name in saved
        }
        return cls(**values)


# Run-time types JSON has no form for, tagged so `decode` gives them back whatever field (or
# dict inside a field, like a transition's StartTime) holds them.
_TAGS = {"$datetime": datetime.fromisoformat, "$frozenset": frozenset, "$tuple": tuple}


def encode(value):
    """A record's field as JSON-able data; `decode` gives the same value back."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, frozenset | set):
        return {"$frozenset": sorted(value)}
    if isinstance(value, tuple):
        return {"$tuple": [encode(item) for item in value]}
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [encode(item) for item in value]
    return value


def decode(value):
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in _TAGS:
            ((tag, inner),) = value.items()
            return _TAGS[tag](decode(inner) if tag == "$tuple" else inner)
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


@dataclass(kw_only=True)
class TrainingJob(Job):
    KIND = "training-job"
    secondary_status: str = "Starting"
    transitions: list[dict] = field(default_factory=list)
    started: datetime | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    metric_times: dict[str, datetime] = field(default_factory=dict)
    artifact: str | None = None
    tuning_job_arn: str | None = None
    cpu_share: int = 1  # jobs running side by side (tuning trials) split the cores
    children: list = field(default_factory=list)  # supervisor.Child, one per instance
    # How a stop ends the job: its secondary status (Stopped, MaxRuntimeExceeded), the message
    # of that transition and a FailureReason (None but when the local cloud itself stopped).
    stop_outcome: tuple[str, str, str | None] = ("Stopped", "Training job stopped", None)

    def advance(self, status: str, message: str) -> None:
        """A new secondary status (Starting, Downloading, Training, Uploading); none once a stop
        was requested: the job stays `Stopping` until it ends."""
        with self.lock:
            if not self.stop_requested.is_set():
                self._transition(status, message)

    def _transition(self, status: str, message: str) -> None:
        with self.lock:
            stamp = now()
            if self.transitions:
                self.transitions[-1]["EndTime"] = stamp
            self.transitions.append(
                {"Status": status, "StartTime": stamp, "StatusMessage": message}
            )
            self.secondary_status = status

    def mark_training(self) -> bool:
        """Training starts, unless a stop was requested (then False)."""
        with self.lock:
            if self.stop_requested.is_set():
                return False
            self.advance("Training", "Training image download completed. Training in progress.")
            self.started = now()
            return True

    def record_metric(self, name: str, value: float) -> None:
        with self.lock:
            self.metrics[name] = value
            self.metric_times[name] = now()

    def request_stop(
        self,
        secondary: str = "Stopped",
        message: str = "Training job stopped",
        reason: str | None = None,
    ) -> list:
        """Ask the job to stop; returns the instances to signal. Once this has run, no new
        instance starts (see `start_instance`). Status and secondary status are `Stopping`
        until `mark_stopped`, which ends it with ``secondary``, ``message`` and ``reason``;
        the first stop decides them."""
        with self.lock:
            if self.status == "InProgress":
                self.status = "Stopping"
                self.stop_outcome = (secondary, message, reason)
                self._transition("Stopping", "Stopping the training job")
            self.stop_requested.set()
            return list(self.children)

    def start_instance(self, spawn):
        """``spawn()`` an instance unless a stop was requested (then None), atomically with
        `request_stop`: an instance is either signalled by a stop or never started."""
        with self.lock:
            if self.stop_requested.is_set():
                return None
            child = spawn()
            self.children.append(child)
            return child

    def mark_completed(self, artifact: str) -> None:
        with self.lock:
            self.artifact = artifact
        self._finish("Completed", "Completed", "Training job completed")

    def mark_failed(self, reason: str) -> None:
        self._finish("Failed", "Failed", "Training job failed", reason[:1024])

    def mark_stopped(self, artifact: str | None = None) -> None:
        """The stopped job's instances are gone; ``artifact`` is what they saved in model/."""
        with self.lock:
            self.artifact = artifact
            secondary, message, reason = self.stop_outcome
        self._finish("Stopped", secondary, message, reason)

    def _finish(self, status: str, secondary: str, message: str, reason: str | None = None):
        with self.lock:
            self._transition(secondary, message)
            self.transitions[-1]["EndTime"] = now()
            self.failure_reason = reason
            self.ended = now()
            self.status = status

    def describe(self) -> dict:
        r = self.request
        with self.lock:
            response = {
                "TrainingJobName": self.name,
                "TrainingJobArn": self.arn,
                "TuningJobArn": self.tuning_job_arn,
                "ModelArtifacts": {"S3ModelArtifacts": self.artifact or ""},
                "TrainingJobStatus": self.status,
                "SecondaryStatus": self.secondary_status,
                "FailureReason": self.failure_reason,
                "HyperParameters": r.get("HyperParameters", {}),
                "AlgorithmSpecification": r["AlgorithmSpecification"],
                "RoleArn": r["RoleArn"],
                "InputDataConfig": r.get("InputDataConfig") or None,  # none: no member (AWS)
                "OutputDataConfig": r["OutputDataConfig"],
                "ResourceConfig": r["ResourceConfig"],
                "StoppingCondition": r.get("StoppingCondition", {"MaxRuntimeInSeconds": 86400}),
                "CheckpointConfig": r.get("CheckpointConfig"),
                "Environment": r.get("Environment"),
                "CreationTime": self.created,
                "TrainingStartTime": self.started,
                "TrainingEndTime": self.ended,
                "LastModifiedTime": self.ended or now(),
                "SecondaryStatusTransitions": [dict(t) for t in self.transitions],
                "FinalMetricDataList": [
                    {"MetricName": k, "Value": v, "Timestamp": self.metric_times[k]}
                    for k, v in self.metrics.items()
                ],
                "EnableNetworkIsolation": r.get("EnableNetworkIsolation", False),
                "EnableInterContainerTrafficEncryption": r.get(
                    "EnableInterContainerTrafficEncryption", False
                ),
                "EnableManagedSpotTraining": r.get("EnableManagedSpotTraining", False),
            }
            if self.started:
                end = self.ended or now()
                seconds = max(1, int((end - self.started).total_seconds()))
                response["TrainingTimeInSeconds"] = seconds
                response["BillableTimeInSeconds"] = seconds
            return response

    def summary(self) -> dict:
        with self.lock:
            return {
                "TrainingJobName": self.name,
                "TrainingJobArn": self.arn,
                "CreationTime": self.created,
                "TrainingEndTime": self.ended,
                "LastModifiedTime": self.ended or now(),
                "TrainingJobStatus": self.status,
                "SecondaryStatus": self.secondary_status,
            }


@dataclass(kw_only=True)
class TuningJob(Job):
    KIND = "hyper-parameter-tuning-job"
    tuned: frozenset[str]  # the names of the hyperparameters searched over
    objective_type: str  # Minimize or Maximize
    objective_metric: str
    max_jobs: int
    max_parallel: int
    trials: list[TrainingJob] = field(default_factory=list)
    completed_by: str | None = None  # the completion criterion met: no trial starts after it

    def objective_of(self, job: TrainingJob) -> float | None:
        if job.status != "Completed":
            return None
        value = job.metrics.get(self.objective_metric)
        return value if value is not None and math.isfinite(value) else None

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

    def not_improving(self) -> int:
        """How many scored trials, in the order they ended, have not improved the best objective
        by more than 1% since it last did (AWS's measure: "not improving (1% or less)")."""
        with self.lock:
            scored = [(job.ended, self.objective_of(job)) for job in self.trials]
        sign = 1 if self.objective_type == "Minimize" else -1
        best, count = None, 0
        for _, value in sorted((e, v) for e, v in scored if v is not None):
            if best is None or sign * (best - value) > 0.01 * abs(best):
                count = 0
            else:
                count += 1
            best = value if best is None or sign * (best - value) > 0 else best
        return count

    def add_trial(self, job: TrainingJob) -> None:
        with self.lock:
            self.trials.append(job)

    def complete(self, criterion: str) -> list[TrainingJob]:
        """A completion criterion is met: no trial starts after this; returns the running
        trials, to stop. The tuning job ends Completed once they have."""
        with self.lock:
            self.completed_by = self.completed_by or criterion
            return [job for job in self.trials if job.status == "InProgress"]

    def request_stop(self) -> list[TrainingJob]:
        """Stop the search (no trial starts after this); returns the trials to stop."""
        with self.lock:
            self.status = "Stopping"
            self.stop_requested.set()
            return list(self.trials)

    def mark_launch_failed(self, reason: str) -> None:
        with self.lock:
            self.failure_reason = reason[:1024]

    def finish(self) -> None:
        """The search is over: Stopped, Failed (no trial scored, or a launch failed) or
        Completed."""
        with self.lock:
            if self.stop_requested.is_set():
                self.status = "Stopped"
            elif self.failure_reason is None and self.best() is None:
                self.status = "Failed"
                ended_by = (
                    f" before {self.completed_by} ended the search" if self.completed_by else ""
                )
                self.failure_reason = (
                    f"All training jobs failed or reported no {self.objective_metric!r} metric"
                    f"{ended_by}. See the training jobs' FailureReason and logs."
                )
            else:
                self.status = "Failed" if self.failure_reason else "Completed"
            self.ended = now()

    def trial_summary(self, job: TrainingJob) -> dict:
        hps = job.request.get("HyperParameters", {})
        summary = {
            "TrainingJobName": job.name,
            "TrainingJobArn": job.arn,
            "TuningJobName": self.name,
            "CreationTime": job.created,
            "TrainingStartTime": job.started,
            "TrainingEndTime": job.ended,
            "TrainingJobStatus": job.status,
            "TunedHyperParameters": {k: v for k, v in hps.items() if k in self.tuned},
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
            "TuningJobCompletionDetails": {
                "NumberOfTrainingJobsObjectiveNotImproving": self.not_improving()
            },
            "ConsumedResources": {
                "RuntimeInSeconds": int(((ended or now()) - self.created).total_seconds())
            },
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


class RecordLock:
    """The backend's one lock (reentrant), which also saves: a record changed while it is held
    (`Job.__setattr__` calls `changed`) is saved when the outermost holder lets go, once, with
    every change made meanwhile, so a saved record never shows half of one."""

    def __init__(self, save: Callable[[Job], None] | None = None):
        self._lock = threading.RLock()
        self._depth = 0  # only the holder changes it
        self._changed: dict[int, Job] = {}
        self._save = save

    def __enter__(self) -> RecordLock:
        self._lock.acquire()
        self._depth += 1
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            while self._depth == 1 and self._changed:
                changed = list(self._changed.values())
                self._changed.clear()
                for job in changed:
                    self._save(job)
        finally:
            self._depth -= 1
            self._lock.release()

    def changed(self, job: Job) -> None:
        with self:
            if self._save is not None:
                self._changed[id(job)] = job


class SageMakerBackend:
    """Training and tuning jobs, keyed by (region, name); the one lock guards them all.
    ``save(job)`` is called with each record whose status changed (see `RecordLock`)."""

    def __init__(self, save: Callable[[Job], None] | None = None) -> None:
        self.lock = RecordLock(save)
        self.training: dict[tuple[str, str], TrainingJob] = {}
        self.tuning: dict[tuple[str, str], TuningJob] = {}

    def restore(self, training: list[TrainingJob], tuning: list[TuningJob]) -> None:
        """Take back the records a previous local cloud saved. A job still running in them
        was running when that local cloud died (an ordered stop ends every job): it ends
        `Failed`, saying so; a tuning job is not resumed."""
        with self.lock:
            for job in tuning:
                job.lock = self.lock
                self.tuning[(job.region, job.name)] = job
            searches = {job.arn: job for job in tuning}
            for job in sorted(training, key=lambda job: job.created):
                job.lock = self.lock
                self.training[(job.region, job.name)] = job
                if job.tuning_job_arn in searches:
                    searches[job.tuning_job_arn].trials.append(job)
            for job in training:
                if job.status not in TERMINAL:
                    job.mark_failed(LOCAL_CLOUD_DIED)
            for job in tuning:
                if job.status not in TERMINAL:
                    job.status = "Failed"
                    job.failure_reason = LOCAL_CLOUD_DIED
                    job.ended = now()

    def add_training_job(
        self, region: str, request: dict, tuning: TuningJob | None = None
    ) -> TrainingJob:
        name = request["TrainingJobName"]
        with self.lock:
            if (region, name) in self.training:
                raise NameInUse(
                    "Training job names must be unique within an AWS account and region, and a "
                    f"training job with this name already exists ({name})"
                )
            job = TrainingJob(name=name, region=region, request=request, lock=self.lock)
            if tuning is not None:
                job.tuning_job_arn = tuning.arn
                job.cpu_share = tuning.max_parallel
            self.training[(region, name)] = job
        return job

    def add_tuning_job(self, job: TuningJob) -> TuningJob:
        with self.lock:
            if (job.region, job.name) in self.tuning:
                raise NameInUse(f"Hyperparameter tuning job {job.name} already exists")
            job.lock = self.lock
            self.tuning[(job.region, job.name)] = job
            self.lock.changed(job)
        return job

    def training_job(self, region: str, name: str) -> TrainingJob:
        with self.lock:
            if (region, name) not in self.training:
                raise NotFound(TrainingJob.KIND, name)
            return self.training[(region, name)]

    def tuning_job(self, region: str, name: str) -> TuningJob:
        with self.lock:
            if (region, name) not in self.tuning:
                raise NotFound(TuningJob.KIND, name)
            return self.tuning[(region, name)]

    def training_jobs(self, region: str | None = None) -> list[TrainingJob]:
        with self.lock:
            return [job for (r, _), job in self.training.items() if region in (None, r)]

    def tuning_jobs(self, region: str | None = None) -> list[TuningJob]:
        with self.lock:
            return [job for (r, _), job in self.tuning.items() if region in (None, r)]
