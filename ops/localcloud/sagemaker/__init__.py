"""SageMaker in the local cloud: training jobs run for real, tuning jobs run trials.

- `api`: the operations answered here (the rest of SageMaker is moto's records);
- `validate`: the checks AWS makes before accepting a request;
- `records`: training and tuning jobs, and the backend that owns them;
- `launch`: what a job runs, with what environment (the training containers' contracts);
- `training`: the runner that makes a job's processes, logs, metrics and artifacts;
- `tuning`: the search that proposes trials;
- `store`: the records on disk, saved as they change and restored at start.
"""

from __future__ import annotations

import logging
import threading

from ops.localcloud.routes import Route, json_routes
from ops.localcloud.sagemaker.api import SageMakerApi
from ops.localcloud.sagemaker.records import TERMINAL, SageMakerBackend, TuningJob
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

    def routes(self) -> list[Route]:
        return json_routes("SageMaker", "sagemaker", "SageMaker", self.api.handlers())

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
