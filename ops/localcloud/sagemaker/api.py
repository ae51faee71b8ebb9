"""The SageMaker operations the local cloud answers: parse the request, call the backend or a
runner, shape the answer, and turn domain errors into SageMaker's error codes.

Requests and responses are the AWS JSON 1.1 protocol's documents, so boto3, the AWS CLI and the
SageMaker SDK parse them unchanged.
"""

from __future__ import annotations

import threading
from datetime import datetime

from ops.localcloud.routes import Handler, api_method
from ops.localcloud.sagemaker import validate
from ops.localcloud.sagemaker.records import (
    InvalidRequest,
    NameInUse,
    NotFound,
    SageMakerBackend,
    TrainingJob,
)
from ops.localcloud.sagemaker.training import TrainingRunner
from ops.localcloud.sagemaker.tuning import Tuner
from ops.localcloud.wire import AwsError, page, validation_error

NOT_FOUND = "Requested resource not found."


def _aws_error(exc: Exception) -> AwsError | None:
    """SageMaker's answer to a domain error."""
    if isinstance(exc, InvalidRequest):
        return validation_error(str(exc))
    if isinstance(exc, NameInUse):
        return AwsError("ResourceInUse", str(exc))
    if isinstance(exc, NotFound):
        if exc.kind == TrainingJob.KIND:
            return validation_error(NOT_FOUND)
        return AwsError(
            "ResourceNotFound", f"Amazon SageMaker can't find a tuning job named {exc.name}"
        )
    return None


_api = api_method(_aws_error)


class SageMakerApi:
    def __init__(self, backend: SageMakerBackend, runner: TrainingRunner, closing: threading.Event):
        self.backend = backend
        self.runner = runner
        self.closing = closing  # set when the local cloud quiesces: no new trial
        self.tuners: list[Tuner] = []

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateTrainingJob": self.create_training_job,
            "DescribeTrainingJob": self.describe_training_job,
            "StopTrainingJob": self.stop_training_job,
            "ListTrainingJobs": self.list_training_jobs,
            "CreateHyperParameterTuningJob": self.create_hyper_parameter_tuning_job,
            "DescribeHyperParameterTuningJob": self.describe_hyper_parameter_tuning_job,
            "StopHyperParameterTuningJob": self.stop_hyper_parameter_tuning_job,
            "ListHyperParameterTuningJobs": self.list_hyper_parameter_tuning_jobs,
            "ListTrainingJobsForHyperParameterTuningJob": (
                self.list_training_jobs_for_hyper_parameter_tuning_job
            ),
        }

    # -- training jobs ------------------------------------------------------------------

    @_api
    def create_training_job(self, region: str, request: dict) -> dict:
        validate.training_job(request)
        job = self.backend.add_training_job(region, request)
        self.runner.start(job)
        return {"TrainingJobArn": job.arn}

    @_api
    def describe_training_job(self, region: str, request: dict) -> dict:
        return self.backend.training_job(region, request.get("TrainingJobName", "")).describe()

    @_api
    def stop_training_job(self, region: str, request: dict) -> dict:
        job = self.backend.training_job(region, request.get("TrainingJobName", ""))
        if job.status != "InProgress":
            raise validation_error(
                f"The training job {job.name} is not in progress (status {job.status})"
            )
        self.runner.stop(job)
        return {}

    @_api
    def list_training_jobs(self, region: str, request: dict) -> dict:
        summaries = [job.summary() for job in self.backend.training_jobs(region)]
        items = _filter(summaries, request, "TrainingJobName", "TrainingJobStatus")
        # The service model: "SortBy ... The default is CreationTime", "SortOrder ... The
        # default is Ascending" (the operation's note on StatusEquals speaks of newest first;
        # the member documentation is the one a request without sort arguments follows).
        items = _sort(items, request, "CreationTime", "TrainingJobName", "TrainingJobStatus")
        items, token = page(items, request, lambda item: item["TrainingJobName"])
        return {"TrainingJobSummaries": items, **token}

    # -- tuning jobs --------------------------------------------------------------------

    @_api
    def create_hyper_parameter_tuning_job(self, region: str, request: dict) -> dict:
        tuner = Tuner(self.backend, self.runner, region, request, self.closing).start()
        self.tuners.append(tuner)
        return {"HyperParameterTuningJobArn": tuner.job.arn}

    @_api
    def describe_hyper_parameter_tuning_job(self, region: str, request: dict) -> dict:
        return self.backend.tuning_job(
            region, request.get("HyperParameterTuningJobName", "")
        ).describe()

    @_api
    def stop_hyper_parameter_tuning_job(self, region: str, request: dict) -> dict:
        tuning = self.backend.tuning_job(region, request.get("HyperParameterTuningJobName", ""))
        with tuning.lock:
            if tuning.status != "InProgress":
                raise validation_error(f"The tuning job {tuning.name} is not in progress")
            trials = tuning.request_stop()
        for job in trials:
            if job.status == "InProgress":
                self.runner.stop(job)
        return {}

    @_api
    def list_hyper_parameter_tuning_jobs(self, region: str, request: dict) -> dict:
        name, status = "HyperParameterTuningJobName", "HyperParameterTuningJobStatus"
        items = _filter(
            [job.summary() for job in self.backend.tuning_jobs(region)], request, name, status
        )
        # The service model: SortBy "The default is Name", SortOrder "The default is
        # Ascending", MaxResults "The default value is 10".
        items = _sort(items, request, "Name", name, status)
        items, token = page(items, _default_page_size(request), lambda item: item[name])
        return {"HyperParameterTuningJobSummaries": items, **token}

    @_api
    def list_training_jobs_for_hyper_parameter_tuning_job(self, region: str, request: dict):
        tuning = self.backend.tuning_job(region, request.get("HyperParameterTuningJobName", ""))
        with tuning.lock:
            trials = list(tuning.trials)
        items = [tuning.trial_summary(job) for job in trials]
        if request.get("StatusEquals"):
            items = [i for i in items if i["TrainingJobStatus"] == request["StatusEquals"]]
        # The service model: SortBy "The default is Name. If the value of this field is
        # FinalObjectiveMetricValue, any training jobs that did not return an objective metric
        # are not listed"; SortOrder "The default is Ascending"; MaxResults "The default value
        # is 10".
        if request.get("SortBy") == "FinalObjectiveMetricValue":
            items = [i for i in items if OBJECTIVE in i]
        items = _sort(items, request, "Name", "TrainingJobName", "TrainingJobStatus")
        items, token = page(
            items, _default_page_size(request), lambda item: item["TrainingJobName"]
        )
        return {"TrainingJobSummaries": items, **token}


OBJECTIVE = "FinalHyperParameterTuningJobObjectiveMetric"


def _filter(items: list[dict], request: dict, name_key: str, status_key: str) -> list[dict]:
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
    return items


def _sort(
    items: list[dict], request: dict, default_by: str, name_key: str, status_key: str
) -> list[dict]:
    """``SortBy`` (``default_by`` when absent) and ``SortOrder`` (Ascending when absent, as the
    service model documents for every SageMaker list operation); ties go by creation, then
    name, so pages are stable."""
    fields = {
        "Name": lambda item: item[name_key],
        "Status": lambda item: item[status_key],
        "CreationTime": lambda item: item["CreationTime"],
        "FinalObjectiveMetricValue": lambda item: item[OBJECTIVE]["Value"],
    }
    sort_by = request.get("SortBy") or default_by
    if sort_by not in fields:
        raise validation_error(f"SortBy must be one of {', '.join(fields)}")

    def key(item: dict) -> tuple:
        return fields[sort_by](item), item["CreationTime"], item[name_key]

    return sorted(items, key=key, reverse=request.get("SortOrder") == "Descending")


def _default_page_size(request: dict, size: int = 10) -> dict:
    """The request with ``MaxResults`` defaulted where the service model documents a
    default of 10 (the tuning job listings)."""
    return request if request.get("MaxResults") is not None else {**request, "MaxResults": size}


def _timestamp(value) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
