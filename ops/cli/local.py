"""`ops local`: the local cloud (an AWS stand-in on 127.0.0.1 that really trains)."""

from __future__ import annotations

import json
import shlex
from typing import Annotated

import typer

from ops.localcloud import control

app = typer.Typer(
    help="Run the local cloud: the AWS APIs dogops uses, on 127.0.0.1, with no account and no "
    "Docker. Training and tuning jobs really run.",
    no_args_is_help=True,
)


def _exports(environment: dict[str, str]) -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in environment.items())


@app.command()
def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background and return.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 0,
) -> None:
    """Start the local cloud (foreground until Ctrl-C, or --detach)."""
    if detach:
        state = control.up_detached(port)
        typer.echo(f"local cloud running at {state.url} (pid {state.pid}, log {state.log})")
        typer.echo('point a shell at it with: eval "$(ops local env)"')
        return
    existing = control.running()
    if existing is not None:
        typer.echo(f"a local cloud is already running at {existing.url} (pid {existing.pid})")
        raise typer.Exit(1)

    def ready(cloud) -> None:
        typer.echo(f"local cloud listening on {cloud.url} (Ctrl-C stops it and its jobs)")

    control.up_foreground(port, on_ready=ready)


@app.command()
def down() -> None:
    """Stop the background local cloud and its running jobs."""
    typer.echo("stopped" if control.down() else "no local cloud was running")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
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
                intercepted=(info or {}).get("intercepted", []),
            )
        typer.echo(json.dumps(document))
    elif state is None:
        typer.echo("not running (start it with `ops local up --detach`)")
    else:
        typer.echo(f"running at {state.url} (pid {state.pid}, work folder {state.home})")
    if state is None:
        raise typer.Exit(1)


@app.command()
def env() -> None:
    """Print `export` lines that point boto3, the AWS CLI and the SageMaker SDK at it."""
    state = control.require_running()
    typer.echo(_exports(state.environment()))
