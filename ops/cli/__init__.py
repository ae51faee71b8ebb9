"""The `ops` command line: one Typer sub-app per concern, combined here.

Commands only parse options and call library functions. Library failures are `OpsError`;
they are printed as one line on stderr with a non-zero exit, unless `--debug` is given.
"""

from __future__ import annotations

import json
from importlib.metadata import version as package_version
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from ops.cli import data as data_cli
from ops.cli import endpoint as endpoint_cli
from ops.cli import loadtest as loadtest_cli
from ops.cli import local as local_cli
from ops.cli import pipeline as pipeline_cli
from ops.cli import scaling as scaling_cli
from ops.cli import serve as serve_cli
from ops.cli import train as train_cli
from ops.errors import OpsError

_state = {"debug": False}


class _OpsGroup(TyperGroup):
    """Maps library errors to one line on stderr and exit code 1 (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OpsError as exc:
            if _state["debug"]:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="ops",
    cls=_OpsGroup,
    help="Train, deploy, scale and load-test the dog-breed classifier, on AWS or locally.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(local_cli.app, name="local")
app.add_typer(scaling_cli.app, name="scaling")
app.command("serve")(serve_cli.serve)
app.command("train")(train_cli.train)
app.command("promote-endpoint")(endpoint_cli.promote_endpoint)
app.command("loadtest")(loadtest_cli.loadtest)
app.command("pipeline")(pipeline_cli.run_pipeline)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


@app.command()
def version(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the installed version of dogops."""
    v = package_version("dogops")
    typer.echo(json.dumps({"version": v}) if as_json else v)


def main() -> None:
    """Console-script entry point."""
    app()
