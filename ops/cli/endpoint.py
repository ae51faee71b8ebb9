"""`ops promote-endpoint`: the trained model onto the endpoint, safely; or back with --rollback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ops import promotion
from ops.cli.train import TargetName
from ops.config import endpoint_settings
from ops.errors import OpsError
from ops.localcloud.control import home
from ops.target import resolve


def promote_endpoint(
    target: Annotated[
        TargetName, typer.Option(help="local: the local cloud (`ops local up`); aws: your account.")
    ] = TargetName.local,
    model_data: Annotated[
        str | None,
        typer.Option(
            help="s3://.../model.tar.gz to promote (default: the artifact `ops train` recorded "
            "for this target)."
        ),
    ] = None,
    instance_type: Annotated[
        str | None,
        typer.Option(
            help="Endpoint instance type (default: the endpoint's current type, else "
            f"{promotion.DEFAULT_INSTANCE_TYPE}). A change deregisters and re-registers the "
            "scalable target around the update."
        ),
    ] = None,
    image_uri: Annotated[
        str | None, typer.Option(help="Inference image (default: AWS PyTorch inference DLC).")
    ] = None,
    outputs: Annotated[
        Path | None,
        typer.Option(
            help="aws: saved `terraform output -json` (default: run terraform output in "
            "terraform/envs/dev)."
        ),
    ] = None,
    rollback: Annotated[
        bool,
        typer.Option(
            "--rollback",
            help="Return the endpoint to the config it served before the current one.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for InService, per wait.", min=1)
    ] = 1800.0,
    poll: Annotated[
        float, typer.Option(help="Seconds between DescribeEndpoint calls.", min=0.05)
    ] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Create a model and an endpoint config (timestamped names) for the trained artifact, create
    or update the endpoint named in terraform.tfvars keeping its autoscaled instance count, wait
    until InService, check it with a smoke invocation, roll back if anything fails, and delete
    configs and models no longer used (the previous ones are kept for --rollback)."""
    settings = endpoint_settings()
    if rollback and model_data:
        raise OpsError("--rollback returns to a config already made; it takes no --model-data")
    plan = promotion.PromotePlan(
        instance_type=instance_type, image_uri=image_uri, timeout_s=timeout, poll_s=poll
    )
    if not rollback:
        plan.model_data = model_data or promotion.recorded_model_data(
            home() / "trained", target.value
        )
    resolved = resolve(target.value, outputs)
    console = Console(stderr=True)
    view = _View(console, interactive=not as_json and console.is_terminal, silent=as_json)
    try:
        with view:
            if rollback:
                result = promotion.rollback(resolved, settings, plan, view)
            else:
                result = promotion.promote(resolved, settings, plan, view)
    except promotion.PromotionFailed as exc:
        if as_json:
            typer.echo(json.dumps(exc.result.to_json(), indent=2))
        raise
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    typer.echo(
        f"endpoint {result.endpoint} {result.action}: config {result.endpoint_config}, model "
        f"{result.model}, {result.instance_count} x {result.instance_type}"
        + (" (instance count retained)" if result.retained_variant_properties else "")
    )
    if result.smoke:
        typer.echo(
            f"smoke invocation: {result.smoke['label']} ({result.smoke['probability']:.3f}) in "
            f"{result.smoke['seconds'] * 1000:.0f} ms"
        )
    scaling = result.autoscaling
    if scaling.get("re_registered"):
        typer.echo(f"scalable target registered again: {', '.join(scaling['re_registered'])}")
    if scaling.get("status"):
        typer.echo(f"autoscaling: {scaling['status']}")
    deleted = result.deleted
    if deleted["endpoint_configs"] or deleted["models"]:
        typer.echo(
            f"deleted {len(deleted['endpoint_configs'])} configs and {len(deleted['models'])} "
            f"models; kept {result.previous_config} for --rollback"
        )
    typer.echo(f"took {result.timings.get('total', 0):.0f} s")


_LINES = {
    "replacing": lambda i: f"replacing the Failed endpoint ({i['reason']})",
    "model": lambda i: f"model {i['name']} <- {i['model_data']}",
    "config": lambda i: f"endpoint config {i['name']}: {i['count']} x {i['instance_type']}",
    "create": lambda i: f"creating the endpoint on {i['config']}",
    "update": lambda i: (
        f"updating the endpoint to {i['config']} "
        f"(RetainAllVariantProperties={i['retain']}: {i['why']})"
    ),
    "deregistered": lambda i: f"deregistered scalable target {i['resource_id']} for the update",
    "re-registered": lambda i: f"registered scalable target {i['resource_id']} again",
    "smoke": lambda i: f"smoke invocation answered {i['label']} ({i['probability']:.3f})",
    "rollback": lambda i: f"rolling back to {i['to']}: {i['reason']}",
    "autoscaling": lambda i: f"autoscaling {i.get('resource_id', '')}: {i['status']}",
    "deleted": lambda i: (
        f"deleted configs {', '.join(i['endpoint_configs']) or '-'}; "
        f"models {', '.join(i['models']) or '-'}"
    ),
}


class _View:
    """Steps as lines and the endpoint's status on a spinner (a terminal), plain lines on stderr
    (not a terminal), or nothing (--json)."""

    def __init__(self, console: Console, interactive: bool, silent: bool):
        self.console = console
        self.interactive = interactive
        self.silent = silent
        self.status = None
        self.last_wait = ""

    def __enter__(self) -> _View:
        if self.interactive:
            self.status = self.console.status("starting")
            self.status.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.status is not None:
            self.status.stop()

    def __call__(self, event: str, info: dict) -> None:
        if self.silent:
            return
        if event == "waiting":
            line = f"endpoint {info['status']} ({info['seconds']:.0f} s)"
            if self.status is not None:
                self.status.update(line)
            elif info["status"] != self.last_wait:
                print(line, file=sys.stderr, flush=True)
            self.last_wait = info["status"]
            return
        self.last_wait = ""
        render = _LINES.get(event)
        line = render(info) if render else f"{event}: {json.dumps(info, default=str)}"
        if self.status is not None:
            self.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)
