"""`ops scaling`: the endpoint's target-tracking policy, simulated before it meets traffic."""

from __future__ import annotations

import dataclasses
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ops.scaling import simulate as sim
from ops.scaling.policy import InvalidScalingInput

app = typer.Typer(
    help="The endpoint's autoscaling: AWS's target tracking, simulated on a manual clock.",
    no_args_is_help=True,
)


class Profile(StrEnum):
    step = "step"
    spike = "spike"
    ramp = "ramp"


def _alarm(state: str | None) -> str:
    if state is None:
        return "-"
    return f"[bold red]{state}[/]" if state == "ALARM" else state


def _table(result: sim.Simulation) -> Table:
    target = result.policy.target_value
    table = Table(
        title=(
            f"{result.target.resource_id}: target {target:g}/instance/min, "
            f"{result.target.min_capacity}-{result.target.max_capacity} instances, cooldowns "
            f"in {result.policy.scale_in_cooldown} s / out {result.policy.scale_out_cooldown} s, "
            f"warm-up {result.warmup_seconds} s"
        ),
        title_justify="left",
        caption="A row is minute [m, m+1); alarms and decisions are evaluated at its end (m+1:00, "
        "an activity's StartTime). per inst. = requests / serving instances "
        "(InvocationsPerInstance); serving = instances that served the minute.",
        caption_justify="left",
    )
    for column, justify in (
        ("min", "right"),
        ("req/min", "right"),
        ("per inst.", "right"),
        ("high", "left"),
        ("low", "left"),
        ("desired", "right"),
        ("serving", "right"),
        ("activity", "left"),
    ):
        table.add_column(column, justify=justify)
    for row in result.minutes:
        above = row.metric > target
        metric = f"{row.metric:.1f}"
        table.add_row(
            str(row.minute),
            f"{row.requests:g}" if row.requests == int(row.requests) else f"{row.requests:.1f}",
            f"[red]{metric}[/]" if above else metric,
            _alarm(row.high),
            _alarm(row.low),
            str(row.desired),
            str(row.in_service),
            "; ".join(row.events),
        )
    return table


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command()
def simulate(
    profile: Annotated[
        Profile, typer.Option(help="Traffic shape (ignored with --csv).")
    ] = Profile.step,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Requests per minute, one row per minute (value in the last column).",
            dir_okay=False,
        ),
    ] = None,
    minutes: Annotated[
        int | None,
        typer.Option(help=f"Minutes to simulate [default: {sim.DEFAULT_MINUTES}, or the CSV's]."),
    ] = None,
    base: Annotated[
        float | None,
        typer.Option(help=f"Profile's low requests/min [default: {sim.BASE_TARGETS} x target]."),
    ] = None,
    peak: Annotated[
        float | None,
        typer.Option(help=f"Profile's high requests/min [default: {sim.PEAK_TARGETS} x target]."),
    ] = None,
    tfvars: Annotated[
        Path | None,
        typer.Option(
            help="The tfvars Terraform applies [default: terraform/envs/dev/terraform.tfvars].",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    target: Annotated[
        float | None, typer.Option("--target", help="Target invocations per instance per minute.")
    ] = None,
    min_capacity: Annotated[int | None, typer.Option("--min", help="Min instances.")] = None,
    max_capacity: Annotated[int | None, typer.Option("--max", help="Max instances.")] = None,
    scale_in_cooldown: Annotated[int | None, typer.Option(help="Seconds.")] = None,
    scale_out_cooldown: Annotated[int | None, typer.Option(help="Seconds.")] = None,
    disable_scale_in: Annotated[
        bool | None, typer.Option("--disable-scale-in/--enable-scale-in", help="DisableScaleIn.")
    ] = None,
    warmup: Annotated[
        int,
        typer.Option(help="Seconds from a scale-out until its instances serve traffic."),
    ] = sim.DEFAULT_WARMUP_SECONDS,
    png: Annotated[
        Path | None, typer.Option(help="Write the timeline as a PNG chart here.", dir_okay=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Simulate the endpoint's target-tracking policy over a traffic profile or a CSV.

    The policy comes from the tfvars Terraform applies; flags override single numbers.
    """
    try:
        scalable_target, policy = sim.policy_from_tfvars(tfvars)
        scalable_target = dataclasses.replace(
            scalable_target,
            **{
                k: v
                for k, v in (("min_capacity", min_capacity), ("max_capacity", max_capacity))
                if v is not None
            },
        )
        overrides = {
            "target_value": target,
            "scale_in_cooldown": scale_in_cooldown,
            "scale_out_cooldown": scale_out_cooldown,
            "disable_scale_in": disable_scale_in,
        }
        policy = dataclasses.replace(
            policy, **{k: v for k, v in overrides.items() if v is not None}
        )
        if csv_file is not None:
            requests = sim.read_requests_csv(csv_file)
            if minutes is not None:
                if not 1 <= minutes <= len(requests):
                    raise InvalidScalingInput(
                        f"--minutes must be between 1 and the CSV's {len(requests)} minutes"
                    )
                requests = requests[:minutes]
        else:
            requests = sim.profile(
                profile.value,
                sim.DEFAULT_MINUTES if minutes is None else minutes,
                base=sim.BASE_TARGETS * policy.target_value if base is None else base,
                peak=sim.PEAK_TARGETS * policy.target_value if peak is None else peak,
            )
        if png is not None and not png.parent.is_dir():
            raise InvalidScalingInput(f"no directory {png.parent} to write {png.name} in")
        result = sim.simulate(requests, scalable_target, policy, warmup_seconds=warmup)
    except InvalidScalingInput as exc:
        raise _fail(str(exc)) from None
    if png is not None:
        sim.write_png(result, png)
    if as_json:
        document = result.to_json()
        if png is not None:
            document["png"] = str(png)
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console()
    console.print(_table(result))
    if png is not None:
        console.print(f"chart written to {png}")
