"""SageMaker in the local cloud: training jobs run for real, tuning jobs run trials.

- `api`: the operations answered here (the rest of SageMaker is moto's records);
- `validate`: the checks AWS makes before accepting a request;
- `records`: training and tuning jobs, and the backend that owns them;
- `launch`: what a job runs, with what environment (the training containers' contracts);
- `training`: the runner that makes a job's processes, logs, metrics and artifacts;
- `tuning`: the search that proposes trials.
"""

from __future__ import annotations

from ops.localcloud.routes import Route, json_routes
from ops.localcloud.sagemaker.api import SageMakerApi
from ops.localcloud.sagemaker.records import SageMakerBackend
from ops.localcloud.sagemaker.training import TrainingRunner
from ops.localcloud.service import Context, Service


class SageMakerService(Service):
    def __init__(self, context: Context):
        super().__init__(context)
        self.backend = SageMakerBackend()
        self.runner = TrainingRunner(context)
        self.api = SageMakerApi(self.backend, self.runner)

    def routes(self) -> list[Route]:
        return json_routes("SageMaker", "sagemaker", "SageMaker", self.api.handlers())

    def quiesce(self) -> None:
        """Every running job is asked to stop (SIGTERM)."""
        for job in self.backend.training_jobs():
            if job.status == "InProgress":
                self.runner.stop(job)
