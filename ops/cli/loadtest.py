"""`ops loadtest`: the Lambda load test (loadtest/lambda.py) headless, then its verdict."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from loadtest import headless, report


class Shape(StrEnum):
    step = "step"
    spike = "spike"
    ramp = "ramp"


class Payload(StrEnum):
    image = "image"
    url = "url"


class Target(StrEnum):
    local = "local"
    aws = "aws"


def loadtest(
    shape: Annotated[
        Shape | None, typer.Option(help="Load profile (default: pyproject's tool.locust).")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            help="Policy seconds of the whole run; the warm-up, hold and tail keep their "
            "proportions (default: their sum).",
        ),
    ] = None,
    warmup: Annotated[float | None, typer.Option(help="Policy seconds before the load.")] = None,
    hold: Annotated[float | None, typer.Option(help="Policy seconds of the load.")] = None,
    tail: Annotated[float | None, typer.Option(help="Policy seconds after the load.")] = None,
    peak_users: Annotated[int | None, typer.Option(help="Users at the peak.")] = None,
    base_users: Annotated[int | None, typer.Option(help="Users before and after.")] = None,
    rate: Annotated[
        float | None, typer.Option(help="Requests per policy second per user; 0: back to back.")
    ] = None,
    time_scale: Annotated[
        float | None,
        typer.Option(
            help="The local cloud's --time-scale (default: the running local cloud's; 1 on AWS)."
        ),
    ] = None,
    target: Annotated[Target, typer.Option(help="Where the function runs.")] = Target.local,
    payload: Annotated[Payload | None, typer.Option(help="Image body or {'url'}.")] = None,
    image_file: Annotated[
        Path | None, typer.Option(help="JPEG to send.", exists=True, dir_okay=False)
    ] = None,
    image_url: Annotated[str | None, typer.Option(help="Image URL for --payload url.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Report prefix (default: runs/loadtest/<UTC time>/lambda)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    locust_args: Annotated[
        list[str] | None,
        typer.Argument(
            help="More options for the locustfile or Locust, after --: e.g. -- --function-name "
            "other --expect-instances 3 (loadtest/options.py lists them).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Drive concurrent traffic through the Lambda function with Locust (headless) and check
    that the endpoint and the function scaled as Terraform declares.

    Exit code 0: the verdict passed; 1: it failed; 2: the options were refused.
    """
    # An unset time scale is left to the locustfile, which takes the local cloud's (1 on AWS).
    phases = {"warmup": warmup, "hold": hold, "tail": tail}
    if duration is not None:
        phases = headless.phases_for(duration, phases)
    prefix = out or headless.default_prefix()
    options = {
        "target": target.value,
        "shape": shape.value if shape else None,
        **phases,
        "peak_users": peak_users,
        "base_users": base_users,
        "rate": rate,
        "time_scale": time_scale,
        "payload": payload.value if payload else None,
        "image_file": image_file,
        "image_url": image_url,
    }
    # Locust's own output (its summary, the watch's progress) goes to stderr under --json.
    result = headless.run(
        options, prefix, extra=locust_args or [], stdout=sys.stderr if as_json else None
    )
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        if result.verdict is not None:
            report.print_verdict(result.verdict)
        else:
            typer.echo(f"no verdict: locust exited {result.exit_code}", err=True)
        document = result.to_json()
        typer.echo(f"ran: {document['command']}")
        for label, path in document["outputs"].items():
            typer.echo(f"{label.replace('_', ' ')}: {path}")
    raise typer.Exit(result.exit_code)
