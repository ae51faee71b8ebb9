"""SageMaker in the local cloud: training jobs run for real, tuning jobs run trials.

- `api`: the operations answered here (the rest of SageMaker is moto's records);
- `validate`: the checks AWS makes before accepting a request;
- `records`: training and tuning jobs, and the backend that owns them;
- `launch`: what a job runs, with what environment (the training containers' contracts);
- `training`: the runner that makes a job's processes, logs, metrics and artifacts;
- `tuning`: the search that proposes trials.
"""

from __future__ import annotations

import threading

from ops.localcloud.routes import Route, json_routes
from ops.localcloud.sagemaker.api import SageMakerApi
from ops.localcloud.sagemaker.records import SageMakerBackend
from ops.localcloud.sagemaker.training import LOCAL_CLOUD_STOPPED, TrainingRunner
from ops.localcloud.service import Context, Service


class SageMakerService(Service):
    def __init__(self, context: Context):
        super().__init__(context)
        self.backend = SageMakerBackend()
        self.runner = TrainingRunner(context)
        self.closing = threading.Event()
        self.api = SageMakerApi(self.backend, self.runner, self.closing)

    def routes(self) -> list[Route]:
        return json_routes("SageMaker", "sagemaker", "SageMaker", self.api.handlers())

    def quiesce(self) -> None:
        """No trial starts from now on; every running job is asked to stop (SIGTERM, then
        SIGKILL after the supervisor's grace period) and ends `Stopped`, saying why."""
        self.closing.set()
        for job in self.backend.training_jobs():
            if job.status == "InProgress":
                self.runner.stop(job, reason=LOCAL_CLOUD_STOPPED)

    def drain(self, timeout: float) -> None:
        self.runner.join(timeout)
        for tuner in self.api.tuners:
            tuner.thread.join(timeout=1.0)
