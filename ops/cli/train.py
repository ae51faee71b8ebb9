"""`ops train`: tune, then train with the best hyperparameters, on the local cloud or AWS."""

from __future__ import annotations

import dataclasses
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ops import training
from ops.errors import OpsError
from ops.job_requests import OBJECTIVE_METRIC, TrainPlan
from ops.localcloud.control import home
from ops.synth import synthesize
from ops.target import TRAIN_DEFAULTS, resolve, train_defaults


def _per_target(attribute: str) -> str:
    """``local X, aws Y``: a profile value on each target, for the options' help."""
    return ", ".join(
        f"{name} {getattr(d.profile, attribute)}" for name, d in TRAIN_DEFAULTS.items()
    )


class TargetName(StrEnum):
    local = "local"
    aws = "aws"


class Where(StrEnum):
    sagemaker = "sagemaker"
    ec2 = "ec2"


class Arch(StrEnum):
    resnet18 = "resnet18"
    resnet34 = "resnet34"
    resnet50 = "resnet50"


class Weights(StrEnum):
    imagenet = "imagenet"
    none = "none"


class Strategy(StrEnum):
    bayesian = "Bayesian"
    random = "Random"


class LiveView:
    """Trials, the best objective so far, and the final job, redrawn as events arrive."""

    def __init__(self, console: Console):
        self.console = console
        self.live = Live(console=console, refresh_per_second=4, transient=False)
        self.trials: list[dict] = []
        self.tuning: dict | None = None
        self.training: dict | None = None
        self.notes: list[str] = []

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.update(self._render())
        self.live.__exit__(*exc)

    def __call__(self, event: str, info: dict) -> None:
        if event == "upload":
            self.notes.append(f"uploading {info['images']} images to {info['uri']}")
        elif event == "uploaded":
            self.notes[-1] = (
                f"data at {info['uri']} ({info['uploaded']} uploaded, "
                f"{info['skipped']} already there)"
            )
        elif event == "tuning-started":
            self.notes.append(f"tuning job {info['name']}")
        elif event == "tuning":
            self.tuning = info["job"]
            self.trials = info["trials"]
        elif event == "training-started" or event == "ec2-started":
            self.notes.append(f"training job {info['name']}")
        elif event == "training":
            self.training = info["job"]
        elif event == "ec2-status":
            self.training = {"SecondaryStatus": info["status"]}
        self.live.update(self._render())

    def _render(self):
        parts: list = [Text(note, style="dim") for note in self.notes]
        if self.tuning is not None:
            counters = self.tuning["TrainingJobStatusCounters"]
            limits = self.tuning["HyperParameterTuningJobConfig"]["ResourceLimits"]
            best = (
                self.tuning.get("BestTrainingJob", {})
                .get("FinalHyperParameterTuningJobObjectiveMetric", {})
                .get("Value")
            )
            table = Table(
                title=(
                    f"tuning: {self.tuning['HyperParameterTuningJobStatus']}, "
                    f"{counters['Completed']}/{limits['MaxNumberOfTrainingJobs']} trials done, "
                    f"best {OBJECTIVE_METRIC} " + (f"{best:.4f}" if best is not None else "-")
                ),
                title_justify="left",
            )
            for column in (
                "trial",
                "status",
                "learning-rate",
                "batch-size",
                OBJECTIVE_METRIC,
            ):
                table.add_column(column)
            prefix = self.tuning["HyperParameterTuningJobName"] + "-"
            for trial in sorted(self.trials, key=lambda t: t["TrainingJobName"]):
                tuned = trial.get("TunedHyperParameters", {})
                value = trial.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
                rate = tuned.get("learning-rate")
                table.add_row(
                    trial["TrainingJobName"].removeprefix(prefix),
                    trial["TrainingJobStatus"],
                    f"{float(rate):.4g}" if rate else "-",
                    tuned.get("batch-size", "-"),
                    f"{value:.4f}" if value is not None else "-",
                )
            parts.append(table)
        if self.training is not None:
            status = self.training.get("TrainingJobStatus", "")
            parts.append(Text(f"training: {status} {self.training.get('SecondaryStatus', '')}"))
        return Group(*parts)


def _hyperparameters(learning_rate: float | None, batch_size: int | None) -> dict[str, str]:
    values = {}
    if learning_rate is not None:
        values["learning-rate"] = repr(learning_rate)
    if batch_size is not None:
        values["batch-size"] = str(batch_size)
    return values


def train(
    target: Annotated[
        TargetName, typer.Option(help="local: the local cloud (`ops local up`); aws: your account.")
    ] = TargetName.local,
    on: Annotated[
        Where,
        typer.Option(
            help="sagemaker: tuning + training jobs; ec2: the script on the training host "
            "through SSM Run Command (Terraform's EC2 host, or the local cloud's), no tuning."
        ),
    ] = Where.sagemaker,
    data: Annotated[
        Path | None,
        typer.Option(
            help="dogImages folder to upload (local default: data/synth, synthesised if missing)."
        ),
    ] = None,
    data_uri: Annotated[
        str | None, typer.Option(help="Use data already in S3 (s3://bucket/prefix) instead.")
    ] = None,
    outputs: Annotated[
        Path | None,
        typer.Option(
            help="aws: saved `terraform output -json` (default: run "
            "terraform output in terraform/envs/dev)."
        ),
    ] = None,
    skip_tuning: Annotated[
        bool,
        typer.Option(
            "--skip-tuning",
            help="Train once with the given (or the original project's best) hyperparameters.",
        ),
    ] = False,
    max_jobs: Annotated[int, typer.Option(help="Tuning trials in total.", min=1)] = 2,
    max_parallel: Annotated[int, typer.Option(help="Trials at a time.", min=1)] = 1,
    strategy: Annotated[Strategy, typer.Option(help="Search strategy.")] = Strategy.bayesian,
    learning_rate: Annotated[
        float | None, typer.Option(help="Fix the learning rate (not tuned).", min=0)
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Fix the batch size (not tuned).", min=1)
    ] = None,
    instance_count: Annotated[
        int,
        typer.Option(help="Instances for the final job (>1: distributed data parallel).", min=1),
    ] = 1,
    epochs: Annotated[
        int | None, typer.Option(help=f"Epochs ({_per_target('epochs')}).", min=1)
    ] = None,
    arch: Annotated[Arch | None, typer.Option(help=f"Backbone ({_per_target('arch')}).")] = None,
    image_size: Annotated[
        int | None, typer.Option(help=f"Image side ({_per_target('image_size')}).", min=32)
    ] = None,
    weights: Annotated[
        Weights | None, typer.Option(help=f"Pretrained weights ({_per_target('weights')}).")
    ] = None,
    tuning_instance_type: Annotated[str, typer.Option()] = "ml.m5.xlarge",
    instance_type: Annotated[str, typer.Option(help="Final job's instance type.")] = (
        "ml.m5.2xlarge"
    ),
    image_uri: Annotated[
        str | None, typer.Option(help="Training image (default: AWS PyTorch DLC).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Tuning's random seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Tune learning rate and batch size (over the target's ranges) for the lowest Test Loss, then
    train with the best values; prints them and the model artifact's S3 URI, and records the
    result for `ops promote-endpoint`."""
    defaults = train_defaults(target.value)
    base = defaults.profile
    profile = dataclasses.replace(
        base,
        arch=arch.value if arch else base.arch,
        weights=weights.value if weights else base.weights,
        image_size=image_size or base.image_size,
        epochs=epochs or base.epochs,
    )
    if data is None and data_uri is None:
        if defaults.data is None:
            raise OpsError(f"--target {target.value} needs --data FOLDER or --data-uri s3://...")
        data = defaults.data
        if not data.exists():
            typer.echo(f"{data} does not exist: synthesising a small data set there", err=True)
            synthesize(data, classes=5, per_class=24, size=128, seed=0)
    plan = TrainPlan(
        data=data,
        data_uri=data_uri,
        profile=profile,
        tune=not skip_tuning,
        max_jobs=max_jobs,
        max_parallel=max_parallel,
        strategy=strategy.value,
        hyperparameters=_hyperparameters(learning_rate, batch_size),
        instance_count=instance_count,
        tuning_instance_type=tuning_instance_type,
        training_instance_type=instance_type,
        image_uri=image_uri,
        random_seed=seed,
    )
    resolved = resolve(target.value, outputs)
    console = Console(stderr=True)
    interactive = not as_json and console.is_terminal
    with LiveView(console) if interactive else _Quiet(silent=as_json) as view:
        if on is Where.ec2:
            result = training.train_on_ec2(resolved, plan, view)
        else:
            result = training.train(resolved, plan, view)
    training.record(result, home() / "trained")
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    typer.echo(f"best hyperparameters: {json.dumps(result.best_hyperparameters)}")
    if result.best_objective is not None:
        typer.echo(f"best {OBJECTIVE_METRIC}: {result.best_objective:.4f} ({result.tuning_job})")
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    typer.echo(f"training job: {result.training_job} ({shown})")
    if result.test_accuracy is not None:
        typer.echo(f"test accuracy: {result.test_accuracy:.1%}")
    typer.echo(f"model artifact: {result.model_artifact}")
    typer.echo(f"took {result.seconds:.0f} s; recorded in {result.recorded}")


class _Quiet:
    """Progress as plain lines on stderr (not a terminal), or nothing (--json)."""

    def __init__(self, silent: bool):
        self.silent = silent
        self.last: dict[str, str] = {}

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __call__(self, event: str, info: dict) -> None:
        if self.silent:
            return
        line = None
        if event in ("uploaded", "tuning-started", "training-started", "ec2-started", "tuned"):
            line = f"{event}: {json.dumps(info, default=str)}"
        elif event == "tuning":
            job = info["job"]
            counters = job["TrainingJobStatusCounters"]
            line = (
                f"tuning {job['HyperParameterTuningJobStatus']}: {counters['Completed']} "
                f"completed, {counters['InProgress']} in progress"
            )
        elif event == "training":
            line = f"training {info['job']['TrainingJobStatus']}: {info['job']['SecondaryStatus']}"
        if line and self.last.get(event) != line:
            self.last[event] = line
            print(line, file=sys.stderr, flush=True)
