"""The run's report files beside Locust's own, and the verdict as a table.

For a prefix P (Locust's ``--csv`` prefix, else the ``--html`` file without its suffix, else
``--report-prefix``): ``P_timeline.csv`` and ``P_timeline.json`` (the rows, activities and
totals the verdict judged), ``P_scaling.png`` (the chart) and ``P_verdict.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loadtest.timeline import Timeline
from loadtest.verdict import Expectations, Status, Verdict, capacity_changes

_STYLE = {Status.PASSED: "green", Status.FAILED: "bold red", Status.NOT_APPLICABLE: "dim"}


@dataclass(frozen=True)
class Outputs:
    timeline_csv: Path
    timeline_json: Path
    png: Path
    verdict_json: Path

    def to_json(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}


def outputs_for(prefix: str | Path) -> Outputs:
    prefix = str(prefix)
    return Outputs(
        timeline_csv=Path(f"{prefix}_timeline.csv"),
        timeline_json=Path(f"{prefix}_timeline.json"),
        png=Path(f"{prefix}_scaling.png"),
        verdict_json=Path(f"{prefix}_verdict.json"),
    )


def write(
    prefix: str | Path, timeline: Timeline, expect: Expectations, verdict: Verdict
) -> Outputs:
    outputs = outputs_for(prefix)
    outputs.png.parent.mkdir(parents=True, exist_ok=True)
    timeline.write_csv(outputs.timeline_csv)
    timeline.write_json(outputs.timeline_json)
    write_png(timeline, expect, outputs.png)
    document = {
        **verdict.to_json(),
        "function": timeline.function,
        "endpoint": timeline.endpoint,
        "time_scale": timeline.time_scale,
        "expectations": asdict(expect),
        "outputs": outputs.to_json(),
    }
    outputs.verdict_json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return outputs


def table(verdict: Verdict, title: str = "Scaling verdict") -> Table:
    result = "[green]PASSED[/]" if verdict.passed else "[bold red]FAILED[/]"
    grid = Table(title=f"{title}: {result}", title_justify="left")
    for column in ("check", "result", "expected", "observed"):
        grid.add_column(column, overflow="fold")
    for check in verdict.checks:
        style = _STYLE[check.status]
        grid.add_row(check.name, f"[{style}]{check.status}[/]", check.expected, check.observed)
    counts = verdict.counts
    grid.caption = (
        f"requests {counts.get('requests')}: {counts.get('successes')} succeeded, "
        f"{counts.get('throttles')} throttled, {counts.get('function_errors')} function errors, "
        f"{counts.get('handler_errors')} non-200, {counts.get('other_errors')} other. "
        f"CloudWatch: Lambda Invocations {_number(counts.get('lambda_invocations'))}, "
        f"Throttles {_number(counts.get('lambda_throttles'))}, endpoint Invocations "
        f"{_number(counts.get('endpoint_invocations'))}"
    )
    grid.caption_justify = "left"
    return grid


def print_verdict(verdict: Verdict, outputs: Outputs | None = None, console=None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log or a pipe: wide enough for the table
            console = Console(width=120)
    console.print(table(verdict))
    if outputs is not None:
        for label, path in outputs.to_json().items():
            console.print(f"{label.replace('_', ' ')}: {path}")


def _number(value) -> str:
    return "-" if value is None else f"{value:g}"


def write_png(timeline: Timeline, expect: Expectations, path: Path) -> None:
    """Users and requests/s, p95, instances desired/current, Lambda concurrency and throttles,
    over wall seconds; scaling activities marked where the watch first saw them. Matplotlib's
    Agg canvas: no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = timeline.rows
    figure = Figure(figsize=(11, 10), layout="constrained")
    FigureCanvasAgg(figure)
    load_ax, latency_ax, instances_ax, lambda_ax = figure.subplots(4, 1, sharex=True)
    figure.suptitle(
        f"{timeline.function} -> {timeline.endpoint or 'no endpoint'}  (time scale "
        f"{timeline.time_scale:g}: one policy minute = {timeline.period:g} s)\n"
        f"target {expect.target_per_instance:g}/instance/min, {expect.min_capacity}-"
        f"{expect.max_capacity} instances, cooldowns in {expect.scale_in_cooldown:g} s / out "
        f"{expect.scale_out_cooldown:g} s, reserved concurrency {expect.reserved_concurrency}",
        fontsize="medium",
    )
    if not rows:
        figure.savefig(path, format="png", dpi=100)
        return
    # Counts per row hold over the row; states sampled at a row's end (users, instance
    # counts) hold from that moment on.
    starts = [r.t - r.interval for r in rows]
    x = [*starts, rows[-1].t]
    ends = [r.t for r in rows]

    def steps(values):
        values = [float("nan") if v is None else v for v in values]
        return [*values, values[-1]]

    def sampled(values):
        return [float("nan") if v is None else v for v in values]

    load_ax.step(ends, sampled([r.users for r in rows]), where="post", color="tab:blue")
    load_ax.set_ylabel("users")
    rate_ax = load_ax.twinx()
    rate_ax.step(x, steps([r.requests_per_second for r in rows]), where="post", color="tab:orange")
    rate_ax.set_ylabel("requests / s", color="tab:orange")
    rate_ax.set_ylim(bottom=0)
    latency_ax.step(x, steps([r.p95_ms for r in rows]), where="post", color="tab:purple")
    latency_ax.axhline(expect.max_p95_ms, color="tab:red", linestyle="--", linewidth=0.8)
    latency_ax.set_ylabel("p95 ms")
    instances_ax.step(
        ends, sampled([r.current for r in rows]), where="post", color="tab:green",
        label="current",
    )  # fmt: skip
    instances_ax.step(
        ends,
        sampled([r.desired for r in rows]),
        where="post",
        color="black",
        linestyle="--",
        label="desired",
    )
    instances_ax.axhline(expect.max_capacity, color="grey", linewidth=0.8, label="max")
    instances_ax.set_ylim(0, expect.max_capacity + 1)
    instances_ax.set_ylabel("instances")
    instances_ax.legend(loc="upper right", fontsize="small")
    lambda_ax.step(
        x,
        steps([r.lambda_concurrent for r in rows]),
        where="post",
        color="tab:cyan",
        label="ConcurrentExecutions (CloudWatch)",
    )
    lambda_ax.step(
        x, steps([r.in_flight_max for r in rows]), where="post", color="tab:blue",
        linestyle=":", label="in flight (Locust)",
    )  # fmt: skip
    if expect.reserved_concurrency is not None:
        lambda_ax.axhline(
            expect.reserved_concurrency, color="tab:red", linestyle="--", label="reserved"
        )
    lambda_ax.set_ylabel("concurrency")
    lambda_ax.set_xlabel("seconds since the test started")
    throttle_ax = lambda_ax.twinx()
    throttle_ax.bar(
        starts, [r.throttles for r in rows], width=[r.interval for r in rows], align="edge",
        color="tab:red", alpha=0.3,
    )  # fmt: skip
    throttle_ax.set_ylabel("throttles", color="tab:red")
    throttle_ax.set_ylim(0, max(1, *(r.throttles for r in rows)))
    lambda_ax.legend(loc="upper left", fontsize="small")
    for change in capacity_changes(timeline):
        activity, previous = change.activity, change.previous
        colour = "tab:red" if change.added > 0 else "tab:blue"
        for ax in (load_ax, latency_ax, instances_ax, lambda_ax):
            ax.axvline(activity.seen_at, color=colour, alpha=0.4, linewidth=1)
        instances_ax.annotate(
            f"{previous}->{activity.desired}",
            (activity.seen_at, activity.desired),
            textcoords="offset points",
            xytext=(3, 4),
            fontsize="small",
            color=colour,
        )
    figure.savefig(path, format="png", dpi=100)
