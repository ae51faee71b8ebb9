"""`ops pipeline`: the whole pipeline on the local cloud, one command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ops import pipeline


def run_pipeline(
    time_scale: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Policy seconds per wall second for autoscaling: the mission's 300 s "
            "scale-out cooldown takes 300/N s.",
        ),
    ] = pipeline.DEFAULT_TIME_SCALE,
    data: Annotated[
        Path, typer.Option(help="Where the synthetic data set is written.")
    ] = pipeline.DEFAULT_DATA,
    out: Annotated[
        Path | None,
        typer.Option(help="Load test report prefix (default: runs/pipeline/<UTC time>/lambda)."),
    ] = None,
    train_arg: Annotated[
        list[str] | None,
        typer.Option(
            help="An extra option for `ops train` (repeatable), e.g. --train-arg=--seed=3."
        ),
    ] = None,
    loadtest_arg: Annotated[
        list[str] | None,
        typer.Option(
            help="An extra option for the locustfile (repeatable), e.g. --loadtest-arg=--hold=300."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON at the end.")] = False,
) -> None:
    """Run the whole pipeline locally: the local cloud (bootstrapped from terraform/), a
    synthetic data set, tuning (2 trials) and training, promotion to the autoscaled endpoint,
    and a Locust load test through the Lambda function that checks the endpoint scaled out and
    back in as declared. The local cloud stays up afterwards (`ops local down` stops it).

    Exit code 0: every stage ran and the verdict passed.
    """
    plan = pipeline.Plan(
        time_scale=time_scale,
        data=data,
        train_args=train_arg or [],
        loadtest_args=loadtest_arg or [],
    )
    if out is not None:
        plan.report_prefix = out
    console = Console(stderr=as_json)

    def announce(index: int, total: int, stage: pipeline.Stage) -> None:
        console.rule(f"[bold]{index}/{total} {stage.name}[/]: {stage.command}")

    outcome = pipeline.run(plan, announce, output=sys.stderr if as_json else None)
    if as_json:
        typer.echo(json.dumps(outcome.to_json(), indent=2))
    else:
        _summary(console, outcome)
    raise typer.Exit(0 if outcome.passed else 1)


def _summary(console: Console, outcome: pipeline.Outcome) -> None:
    table = Table(title="Pipeline")
    for column in ("stage", "seconds", "result", "command"):
        table.add_column(column)
    for stage in outcome.stages:
        result = "ok" if stage.exit_code == 0 else f"exit {stage.exit_code}"
        table.add_row(stage.name, f"{stage.seconds:.0f}", result, stage.command)
    console.print(table)
    total = sum(s.seconds or 0 for s in outcome.stages)
    failed = outcome.stopped_at
    if failed is not None:  # first: a verdict, if any, is the load test's and comes after
        console.print(
            f"[bold red]stopped at {failed.name}[/]: run it again with `{failed.command}`"
        )
    verdict = outcome.verdict
    if verdict is not None:
        word = "[green]passed[/]" if verdict.get("passed") else "[bold red]failed[/]"
        console.print(f"verdict: {word} ({total / 60:.1f} min in all)")
        for label in ("png", "timeline_csv", "verdict_json", "html"):
            console.print(f"  {label.replace('_', ' ')}: {outcome.outputs[label]}")
    if outcome.url:
        console.print(
            f"The local cloud stays up at {outcome.url} with the endpoint serving; "
            "`ops local down` stops it."
        )
