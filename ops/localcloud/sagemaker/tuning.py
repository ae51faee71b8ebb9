"""Hyperparameter tuning: trials are training jobs proposed by optuna (TPE for ``Bayesian``,
random sampling for ``Random``, a grid over categorical ranges for ``Grid``).

`Tuner` is one tuning job's loop: at most ``MaxParallelTrainingJobs`` trials at once until
``MaxNumberOfTrainingJobs`` have run, each told back to the study when it ends. Once the tuning
job is stopped, or the local cloud quiesces, no trial starts.

The completion criteria end the search early, as AWS documents them ("AMT checks your job
performance against your completion criteria and stops the tuning job if any have been met",
https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-progress.html):
``ResourceLimits.MaxRuntimeInSeconds`` (wall clock, enforced while trials run),
``TargetObjectiveMetricValue`` (a trial's objective reaches it: <= to minimise, >= to
maximise) and ``BestObjectiveNotImproving`` (that many scored trials in a row without a better
objective by more than 1%). Then no trial starts, the running ones are stopped, and the tuning
job ends ``Completed`` (``Failed`` if no trial scored). ``ConvergenceDetected`` is accepted;
AWS's convergence rule is internal, so ``Enabled`` never ends a search early here.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import dataclass

import optuna

from ops.localcloud.sagemaker import validate
from ops.localcloud.sagemaker.records import (
    InvalidRequest,
    SageMakerBackend,
    TrainingJob,
    TuningJob,
)
from ops.localcloud.sagemaker.training import TrainingRunner

OBJECTIVE_HYPERPARAMETER = "_tuning_objective_metric"
_NOT_PASSED_TO_TRIALS = (
    "StaticHyperParameters",
    "HyperParameterRanges",
    "DefinitionName",
    "TuningObjective",
)

# The clock ``ResourceLimits.MaxRuntimeInSeconds`` is measured on, and how often a search with
# that limit looks at it: a module attribute, so that tests move time past the service model's
# minimum of 120 s instead of waiting for it.
clock = time.monotonic
LIMIT_CHECK_S = 1.0

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class ParameterSpace:
    """The declared ranges as optuna distributions, and the way back to SageMaker strings."""

    distributions: dict[str, optuna.distributions.BaseDistribution]
    reverse_log: set[str]
    integers: set[str]

    @classmethod
    def from_ranges(cls, ranges: dict) -> ParameterSpace:
        space = cls({}, set(), set())
        for kind in ("ContinuousParameterRanges", "IntegerParameterRanges"):
            for spec in ranges.get(kind, []):
                space._add_numeric(spec, integer=kind == "IntegerParameterRanges")
        for spec in ranges.get("CategoricalParameterRanges", []):
            values = spec.get("Values") or []
            if not values:
                raise InvalidRequest(f"range {spec.get('Name')}: Values must not be empty")
            space.distributions[spec["Name"]] = optuna.distributions.CategoricalDistribution(
                list(values)
            )
        if not space.distributions:
            raise InvalidRequest("ParameterRanges declares no ranges")
        return space

    def _add_numeric(self, spec: dict, integer: bool) -> None:
        name = spec["Name"]
        try:
            low, high = float(spec["MinValue"]), float(spec["MaxValue"])
        except (KeyError, ValueError) as exc:
            raise InvalidRequest(f"range {name}: MinValue/MaxValue must be numbers") from exc
        if low > high:
            raise InvalidRequest(f"range {name}: MinValue must not exceed MaxValue")
        scaling = spec.get("ScalingType", "Auto")
        if scaling == "Logarithmic" and low <= 0:
            raise InvalidRequest(f"range {name}: logarithmic scaling needs MinValue > 0")
        if scaling == "ReverseLogarithmic":
            if integer or not 0 <= low < high < 1:
                raise InvalidRequest(
                    f"range {name}: reverse logarithmic scaling needs a continuous range "
                    "within [0, 1)"
                )
            self.reverse_log.add(name)
            # Sample 1 - x on a log scale: dense near the top of the range.
            self.distributions[name] = optuna.distributions.FloatDistribution(
                1 - high, 1 - low, log=True
            )
            return
        log = scaling == "Logarithmic"
        if integer:
            self.integers.add(name)
            self.distributions[name] = optuna.distributions.IntDistribution(
                int(low), int(high), log=log
            )
        else:
            self.distributions[name] = optuna.distributions.FloatDistribution(low, high, log=log)

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
            raise InvalidRequest("the Grid strategy takes categorical ranges only")
        return math.prod(len(d.choices) for d in self.distributions.values())


@dataclass(frozen=True)
class CompletionCriteria:
    """When a search ends before ``MaxNumberOfTrainingJobs`` trials have run."""

    deadline: float | None  # clock() at which MaxRuntimeInSeconds is reached
    target: float | None  # TargetObjectiveMetricValue
    patience: int | None  # MaxNumberOfTrainingJobsNotImproving

    @classmethod
    def from_config(cls, config: dict) -> CompletionCriteria:
        limit = (config.get("ResourceLimits") or {}).get("MaxRuntimeInSeconds")
        criteria = config.get("TuningJobCompletionCriteria") or {}
        patience = criteria.get("BestObjectiveNotImproving") or {}
        return cls(
            deadline=None if limit is None else clock() + limit,
            target=criteria.get("TargetObjectiveMetricValue"),
            patience=patience.get("MaxNumberOfTrainingJobsNotImproving"),
        )

    def remaining(self) -> float | None:
        """Seconds until the runtime limit (None: no limit)."""
        return None if self.deadline is None else max(0.0, self.deadline - clock())

    def met(self, tuning: TuningJob) -> str | None:
        """The first criterion the tuning job meets, named as in the request, or None."""
        if self.remaining() == 0.0:
            return "ResourceLimits.MaxRuntimeInSeconds"
        best = tuning.best()
        if self.target is not None and best is not None:
            value = tuning.objective_of(best)
            minimize = tuning.objective_type == "Minimize"
            if value is not None and (value <= self.target if minimize else value >= self.target):
                return "TuningJobCompletionCriteria.TargetObjectiveMetricValue"
        if self.patience is not None and tuning.not_improving() >= self.patience:
            return "TuningJobCompletionCriteria.BestObjectiveNotImproving"
        return None


class Tuner:
    """One tuning job's search, run on its own thread."""

    def __init__(
        self,
        backend: SageMakerBackend,
        runner: TrainingRunner,
        region: str,
        request: dict,
        closing: threading.Event,
    ):
        settings = validate.tuning_job(request)
        self.space = ParameterSpace.from_ranges(settings.ranges)
        max_jobs = settings.max_jobs
        if settings.strategy == "Bayesian":
            sampler = optuna.samplers.TPESampler(
                seed=settings.seed, n_startup_trials=min(10, max(2, (max_jobs or 10) // 3))
            )
        elif settings.strategy == "Random":
            sampler = optuna.samplers.RandomSampler(seed=settings.seed)
        else:
            size = self.space.grid_size()
            max_jobs = size if max_jobs is None else min(max_jobs, size)
            grid = {n: d.choices for n, d in self.space.distributions.items()}
            sampler = optuna.samplers.GridSampler(grid, seed=settings.seed)
        validate.limits(max_jobs, settings.max_parallel)
        direction = "minimize" if settings.objective_type == "Minimize" else "maximize"
        self.study = optuna.create_study(direction=direction, sampler=sampler)
        self.backend = backend
        self.runner = runner
        self.closing = closing
        self.criteria = CompletionCriteria.from_config(request["HyperParameterTuningJobConfig"])
        self.job = backend.add_tuning_job(
            TuningJob(
                name=settings.name,
                region=region,
                request=request,
                tuned=frozenset(self.space.distributions),
                objective_type=settings.objective_type,
                objective_metric=settings.objective_metric,
                max_jobs=max_jobs,
                max_parallel=min(settings.max_parallel, max_jobs),
            )
        )
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"tuning-{self.name}")

    @property
    def name(self) -> str:
        return self.job.name

    def start(self) -> Tuner:
        self.thread.start()
        return self

    def stop(self) -> None:
        for trial in self.job.request_stop():
            if trial.status == "InProgress":
                self.runner.stop(trial)

    def _may_launch(self) -> bool:
        return not (
            self.job.stop_requested.is_set()
            or self.closing.is_set()
            or self.job.completed_by is not None
        )

    def _check_completion(self) -> None:
        """Once a completion criterion is met: no trial starts and the running ones stop."""
        if self.job.completed_by is None:
            criterion = self.criteria.met(self.job)
            if criterion is not None:
                for trial in self.job.complete(criterion):
                    self.runner.stop(trial)

    def _wait_limit(self) -> float | None:
        """How long to wait for a trial to end before the runtime limit must be checked."""
        remaining = self.criteria.remaining()
        if remaining is None or self.job.completed_by is not None:
            return None
        return min(remaining, LIMIT_CHECK_S)

    def _run(self) -> None:
        tuning = self.job
        done = threading.Semaphore(0)
        running = launched = 0
        try:
            while True:
                self._check_completion()
                while running < tuning.max_parallel and launched < tuning.max_jobs:
                    with tuning.lock:  # a stop or quiesce either precedes the check or sees
                        if not self._may_launch():  # the trial in tuning.trials
                            break
                        self._launch_trial(launched + 1, done)
                    launched += 1
                    running += 1
                if running == 0:
                    break
                if done.acquire(timeout=self._wait_limit()):
                    running -= 1
        except Exception as exc:  # could not even launch: report it on the tuning job
            tuning.mark_launch_failed(f"{type(exc).__name__}: {exc}")
            for job in list(tuning.trials):
                if job.status == "InProgress":
                    self.runner.stop(job)
        tuning.finish()

    def _launch_trial(self, index: int, done: threading.Semaphore) -> None:
        tuning = self.job
        trial = self.study.ask(self.space.distributions)
        definition = tuning.request["TrainingJobDefinition"]
        name = f"{tuning.name}-{index:03d}-{secrets.token_hex(4)}"
        request = {
            "TrainingJobName": name,
            "HyperParameters": {
                **(definition.get("StaticHyperParameters") or {}),
                **self.space.to_hyperparameters(trial.params),
                OBJECTIVE_HYPERPARAMETER: tuning.objective_metric,
            },
            **{k: v for k, v in definition.items() if k not in _NOT_PASSED_TO_TRIALS},
        }
        if request.get("CheckpointConfig"):
            # As on AWS: each trial checkpoints under its own name, never resuming another's.
            checkpoint = dict(request["CheckpointConfig"])
            checkpoint["S3Uri"] = checkpoint["S3Uri"].rstrip("/") + "/" + name
            request["CheckpointConfig"] = checkpoint
        validate.training_job(request)
        job = self.backend.add_training_job(tuning.region, request, tuning)
        tuning.add_trial(job)

        def finished(job: TrainingJob) -> None:
            value = tuning.objective_of(job)
            if value is None:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(trial, value)
            done.release()

        self.runner.start(job, on_done=finished)
