"""SageMaker in the local cloud: training jobs run for real, tuning jobs run trials, endpoints
serve from fleets of model servers.

- `api`: the training and tuning operations answered here (the rest of SageMaker is moto's);
- `validate`: the checks AWS makes before accepting a request;
- `records`: training and tuning jobs, and the backend that owns them;
- `launch`: what a job runs, with what environment (the training containers' contracts);
- `training`: the runner that makes a job's processes, logs, metrics and artifacts;
- `tuning`: the search that proposes trials;
- `endpoints`: the hosting operations (models, endpoint configurations, endpoints);
- `endpoint_records`: their records and the backend that owns them;
- `hosting`: the runner that starts, replaces and drains the endpoints' instances;
- `runtime`: SageMaker Runtime's InvokeEndpoint and the endpoints' CloudWatch metrics;
- `store`: the records on disk, saved as they change and restored at start.
"""

from __future__ import annotations

import logging
import threading

from ops.localcloud.routes import Route, json_routes
from ops.localcloud.sagemaker.api import SageMakerApi
from ops.localcloud.sagemaker.endpoint_records import (
    Endpoint,
    EndpointBackend,
    EndpointConfig,
    Model,
)
from ops.localcloud.sagemaker.endpoints import EndpointApi
from ops.localcloud.sagemaker.hosting import EndpointRunner
from ops.localcloud.sagemaker.records import TERMINAL, SageMakerBackend, TuningJob
from ops.localcloud.sagemaker.runtime import EndpointMetrics, Runtime
from ops.localcloud.sagemaker.store import RecordStore
from ops.localcloud.sagemaker.training import LOCAL_CLOUD_STOPPED, TrainingRunner
from ops.localcloud.service import Context, Service
from ops.localcloud.wire import now

log = logging.getLogger("dogops.localcloud")
SEARCH_STOPPED = "The local cloud stopped while the tuning job was running."


class SageMakerService(Service):
    def __init__(self, context: Context):
        super().__init__(context)
        store = RecordStore(context.home / "sagemaker") if context.persist else None
        self.backend = SageMakerBackend(save=store.save if store else None)
        if store is not None:
            training, tuning = store.load()
            self.backend.restore(training, tuning)
            if training or tuning:
                log.info(
                    "restored %d training and %d tuning job records from %s",
                    len(training),
                    len(tuning),
                    store.root,
                )
        self.stopped_searches: list[TuningJob] = []
        self.runner = TrainingRunner(context)
        self.closing = threading.Event()
        self.api = SageMakerApi(self.backend, self.runner, self.closing)

        # Hosting. The autoscaling controller scales a variant with
        # `hosting.set_desired_instance_count` and reads its traffic with `metrics.window`.
        self.endpoints = EndpointBackend(save=store.save if store else None)
        restored: list[Endpoint] = []
        if store is not None:
            models, configs = store.load_kind(Model), store.load_kind(EndpointConfig)
            restored = store.load_kind(Endpoint)
            self.endpoints.restore(models, configs, restored)
        self.hosting = EndpointRunner(context, self.endpoints)
        self.metrics = EndpointMetrics(context.moto, self.endpoints)
        self.runtime = Runtime(self.endpoints, self.metrics)
        self.endpoint_api = EndpointApi(self.endpoints, self.hosting, context.moto)
        for endpoint in restored:
            self.hosting.resume(endpoint)
        if restored:
            log.info("restored %d endpoints; starting their instances", len(restored))

    def routes(self) -> list[Route]:
        handlers = {**self.api.handlers(), **self.endpoint_api.handlers()}
        return json_routes("SageMaker", "sagemaker", "SageMaker", handlers) + self.runtime.routes()

    def quiesce(self) -> None:
        """No trial starts from now on; every running job is asked to stop (SIGTERM, then
        SIGKILL after the supervisor's grace period) and ends `Stopped`, saying why; so does
        every running tuning job."""
        self.closing.set()
        for tuning in self.backend.tuning_jobs():
            with tuning.lock:
                if tuning.status == "InProgress":
                    tuning.request_stop()
                    self.stopped_searches.append(tuning)
        for job in self.backend.training_jobs():
            if job.status == "InProgress":
                self.runner.stop(job, reason=LOCAL_CLOUD_STOPPED)
        self.hosting.quiesce()  # the supervisor stops the endpoints' instances

    def drain(self, timeout: float) -> None:
        """Wait for the jobs' bookkeeping; what could not end in time ends now, so that every
        saved record is final (the next start would take one still running for a crash)."""
        self.runner.join(timeout)
        for tuner in self.api.tuners:
            tuner.thread.join(timeout=1.0)
        for job in self.backend.training_jobs():
            if job.status not in TERMINAL:
                log.warning("training job %s: its stop did not finish in time", job.name)
                job.mark_stopped()
        for tuning in self.stopped_searches:
            with tuning.lock:
                if tuning.status not in TERMINAL:
                    tuning.status, tuning.ended = "Stopped", now()
                if tuning.status == "Stopped":
                    tuning.failure_reason = tuning.failure_reason or SEARCH_STOPPED
        self.hosting.drain(timeout)
        self.metrics.close()
