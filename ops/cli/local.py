"""`ops local`: the local cloud (an AWS stand-in on 127.0.0.1 that really trains)."""

from __future__ import annotations

import json
import shlex
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from ops import config
from ops.errors import OpsError
from ops.localcloud import control

app = typer.Typer(
    help="Run the local cloud: the AWS APIs dogops uses, on 127.0.0.1, with no account and no "
    "Docker. Training and tuning jobs really run.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _exports(environment: dict[str, str]) -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in environment.items())


def _bootstrap(url: str, home: Path, tfvars: Path, wait: bool, as_json: bool) -> dict:
    """Create what Terraform declares in the local cloud at ``url``; progress lines go to stderr
    with --json (stdout keeps the one JSON document)."""
    from ops.localcloud import bootstrap

    started = time.monotonic()
    try:
        report = bootstrap.run(
            url,
            tfvars=tfvars,
            home=home,
            progress=lambda line: typer.echo(f"bootstrap: {line}", err=as_json),
            wait_provisioned=wait,
        )
    except OpsError as exc:
        raise OpsError(
            f"{exc} (the local cloud keeps running at {url}: fix the cause and run "
            "`ops local up --detach` again, or `ops local down`)"
        ) from exc
    return {
        "steps": [{"step": s.what, "changes": s.changes, "notes": s.notes} for s in report.steps],
        "outputs": report.outputs,
        "outputs_file": str(report.outputs_file),
        "seconds": round(time.monotonic() - started, 3),
    }


@app.command()
def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background and return.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 0,
    time_scale: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="Autoscaling runs this many times faster than the wall clock: metric periods "
            "and cooldowns shrink (20: a 60 s period takes 3 s); the policies' numbers do not.",
        ),
    ] = 1.0,
    bootstrap: Annotated[
        bool,
        typer.Option(
            "--bootstrap/--no-bootstrap",
            help="Once the cloud answers, create in it what Terraform declares for AWS, from "
            "the tfvars: the bucket and its key, the IAM roles, the Lambda function with its "
            "version, alias, reserved and provisioned concurrency, its log group. Idempotent: "
            "a later run updates only what changed. --no-bootstrap starts an empty cloud.",
        ),
    ] = True,
    tfvars: Annotated[
        Path,
        typer.Option(
            help="The tfvars to bootstrap from; its folder is the Terraform root when it holds "
            ".tf files, else terraform/envs/dev.",
            dir_okay=False,
        ),
    ] = config.TFVARS,
    wait_provisioned: Annotated[
        bool,
        typer.Option(
            help="Wait until the provisioned concurrency is READY (it is asynchronous: "
            "without this, up returns while it is IN_PROGRESS)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Start the local cloud (foreground until Ctrl-C, or --detach), then bootstrap it."""
    if detach:
        state = control.up_detached(port, time_scale=time_scale)
        home = Path(state.home or control.home())
        created = (
            _bootstrap(state.url, home, tfvars, wait_provisioned, as_json) if bootstrap else None
        )
        if as_json:
            document = {"url": state.url, "pid": state.pid, "log": state.log}
            typer.echo(json.dumps({**document, "bootstrap": created}))
            return
        typer.echo(f"local cloud running at {state.url} (pid {state.pid}, log {state.log})")
        typer.echo('point a shell at it with: eval "$(ops local env)"')
        return
    existing = control.running()
    if existing is not None:
        raise OpsError(f"a local cloud is already running at {existing.url} (pid {existing.pid})")

    def ready(cloud) -> None:
        if as_json:
            typer.echo(json.dumps({"url": cloud.url, "pid": control.read_state().pid}))
        else:
            typer.echo(f"local cloud listening on {cloud.url} (Ctrl-C stops it and its jobs)")
        if bootstrap:
            # Called before the server accepts requests: bootstrap beside it once it answers.
            threading.Thread(
                target=_bootstrap_when_healthy,
                args=(cloud.url, Path(cloud.home), tfvars, wait_provisioned, as_json),
                daemon=True,
                name="bootstrap",
            ).start()

    from ops.localcloud.app import serve_foreground  # the server side, only when serving here

    serve_foreground(port, on_ready=ready, time_scale=time_scale)


def _bootstrap_when_healthy(url: str, home: Path, tfvars: Path, wait: bool, as_json: bool) -> None:
    """The foreground bootstrap, in a thread beside the server: whatever stops it is said in
    one line on stderr (and, with --json, in a JSON line on stdout), and the server runs on. An
    exception escaping a thread would only print a traceback, with no word of the server."""
    from ops.localcloud import bootstrap

    try:
        bootstrap.wait_answering(url)
        created = _bootstrap(url, home, tfvars, wait, as_json)
    except OpsError as exc:
        message = str(exc)
    except Exception as exc:  # a bug, or the disk: not a reason to stop serving
        message = (
            f"bootstrap failed: {type(exc).__name__}: {exc} (the local cloud keeps running at "
            f"{url}; Ctrl-C stops it)"
        )
    else:
        if as_json:
            typer.echo(json.dumps({"bootstrap": created}))
        return
    typer.echo(f"error: {message}", err=True)
    if as_json:
        typer.echo(json.dumps({"bootstrap": None, "error": message}))


@app.command()
def down(as_json: JsonOption = False) -> None:
    """Stop the background local cloud and its running jobs."""
    result = control.down()
    if result.stale:
        typer.echo(f"warning: {result.stale}", err=True)
    if as_json:
        typer.echo(json.dumps({"stopped": result.stopped, "stale": result.stale}))
    else:
        typer.echo("stopped" if result.stopped else "no local cloud was running")


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Say whether the local cloud runs, where, and what it intercepts."""
    state = control.running()
    info = control.health(state.url) if state else None
    if as_json:
        document = {"running": state is not None}
        if state is not None:
            document.update(
                url=state.url,
                pid=state.pid,
                home=state.home,
                time_scale=(info or {}).get("time_scale", 1.0),
                intercepted=(info or {}).get("intercepted", []),
            )
        typer.echo(json.dumps(document))
    elif state is None:
        typer.echo("not running (start it with `ops local up --detach`)")
    else:
        scale = (info or {}).get("time_scale", 1.0)
        typer.echo(
            f"running at {state.url} (pid {state.pid}, work folder {state.home}, "
            f"time scale {scale:g})"
        )
    if state is None:
        raise typer.Exit(1)


@app.command()
def env(as_json: JsonOption = False) -> None:
    """Print `export` lines (shell-quoted) for boto3, the AWS CLI and the SDK v3.

    eval "$(ops local env)" sets AWS_ENDPOINT_URL, dummy credentials, the region,
    AWS_EC2_METADATA_DISABLED and SAGEMAKER_USER_CONFIG_OVERRIDE: a SageMaker SDK
    config in $DOGOPS_HOME with telemetry off, a default bucket and the local
    execution role, so the SDK calls nothing outside the local cloud.
    """
    environment = control.require_running().environment()
    typer.echo(json.dumps(environment) if as_json else _exports(environment))
