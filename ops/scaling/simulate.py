"""`ops scaling simulate`: the policy engine on a manual clock, over minutes of traffic.

Each simulated minute the endpoint serves that minute's requests with the instances in service;
at the minute's end the engine receives the datapoint (requests / instances in service, i.e.
SageMaker's InvocationsPerInstance) and is evaluated, as CloudWatch evaluates the alarms once a
period. Capacity changes take effect at minute boundaries:

- a scale-out's new instances serve `warmup_seconds` after the activity starts (rounded up to
  the next minute), and only then does the activity succeed and its cooldown begin. Default 5
  minutes: SageMaker says provisioning an instance "takes several minutes", and a recorded
  SageMaker scale-out activity ran 7 minutes from StartTime to EndTime (see ops.scaling.policy);
  a small CPU variant is quicker. Change it with `--warmup`;
- a scale-in takes effect at once: the instance leaves the next minute's traffic.

The evaluation at a minute's end uses the capacity that served the minute, before a change due
at that moment completes: the datapoint was measured on that capacity.
"""

from __future__ import annotations

import csv
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ops.scaling.clock import ManualClock
from ops.scaling.policy import (
    NOT_SCALED_CODES,
    PERIOD_SECONDS,
    Activity,
    Engine,
    InvalidScalingInput,
    ScalableTarget,
    TargetTrackingPolicy,
)

PROFILES = ("step", "spike", "ramp")
DEFAULT_MINUTES = 60
DEFAULT_WARMUP_SECONDS = 300
STEP_AT_MINUTE = 5  # step: the load jumps here and stays
SPIKE_MINUTES = (10, 20)  # spike: the load is at its peak during [10, 20)
# Profile levels relative to the target: the base keeps one instance at half its target; the
# peak needs ceil(3.7) = 4 instances, which then run at 92.5 % of the target (above AlarmLow's
# 90 %, so the fleet holds at 4 instead of scaling in again).
BASE_TARGETS = 0.5
PEAK_TARGETS = 3.7


def profile(name: str, minutes: int, *, base: float, peak: float) -> list[float]:
    """Requests per minute for a named profile.

    step: `base` until minute 5, then `peak` to the end. spike: `base`, with `peak` during
    minutes 10-19. ramp: from `base` up to `peak` at the middle, then back down to `base`.
    """
    _check_minutes(minutes)
    for label, value in (("base", base), ("peak", peak)):
        if not (math.isfinite(value) and value >= 0):
            raise InvalidScalingInput(f"{label} must be a number of requests per minute >= 0")
    if name == "step":
        return [base if m < STEP_AT_MINUTE else peak for m in range(minutes)]
    if name == "spike":
        start, end = SPIKE_MINUTES
        return [peak if start <= m < end else base for m in range(minutes)]
    if name == "ramp":
        middle = (minutes - 1) / 2 or 1
        return [base + (peak - base) * (1 - abs(m - middle) / middle) for m in range(minutes)]
    raise InvalidScalingInput(f"unknown profile {name!r} (choose from {', '.join(PROFILES)})")


def read_requests_csv(path: Path) -> list[float]:
    """Requests per minute from a CSV: one row per minute, the value in the last column
    (so ``minute,requests`` works too). Blank lines and ``#`` comments are skipped; a first row
    that is not a number is a header."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidScalingInput(f"cannot read {path}: {exc}") from exc
    values: list[float] = []
    first = True
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        field_text = row[-1].strip()
        try:
            value = float(field_text)
        except ValueError:
            if first:
                first = False
                continue
            raise InvalidScalingInput(
                f"{path}:{number}: {field_text!r} is not a number of requests per minute"
            ) from None
        first = False
        if not math.isfinite(value) or value < 0:
            raise InvalidScalingInput(
                f"{path}:{number}: requests per minute must be a finite number >= 0, "
                f"not {field_text}"
            )
        values.append(value)
    if not values:
        raise InvalidScalingInput(f"{path} has no requests per minute")
    return values


def policy_from_tfvars(path: Path | None = None) -> tuple[ScalableTarget, TargetTrackingPolicy]:
    """The endpoint's scalable target and policy, from the tfvars Terraform applies."""
    from ops import config

    settings = config.endpoint_settings(path or config.TFVARS)
    target = ScalableTarget(
        resource_id=settings.resource_id,
        min_capacity=settings.min_capacity,
        max_capacity=settings.max_capacity,
    )
    policy = TargetTrackingPolicy(
        policy_name=settings.policy_name,
        target_value=settings.target_invocations_per_instance,
        scale_in_cooldown=settings.scale_in_cooldown,
        scale_out_cooldown=settings.scale_out_cooldown,
        disable_scale_in=settings.disable_scale_in,
    )
    return target, policy


@dataclass(frozen=True)
class Minute:
    """One simulated minute, and what the evaluation at its end did."""

    minute: int  # [minute, minute + 1) minutes after the start
    requests: float
    in_service: int  # instances that served the minute
    metric: float  # InvocationsPerInstance: requests / in_service
    high: str
    low: str | None  # None: scale-in disabled
    desired: int  # the variant's desired instance count after the evaluation
    events: tuple[str, ...]

    def to_json(self) -> dict:
        return {
            "minute": self.minute,
            "requests_per_minute": self.requests,
            "instances_in_service": self.in_service,
            "invocations_per_instance": self.metric,
            "alarm_high": self.high,
            "alarm_low": self.low,
            "desired_instances": self.desired,
            "events": list(self.events),
        }


@dataclass
class Simulation:
    target: ScalableTarget
    policy: TargetTrackingPolicy
    warmup_seconds: int
    alarms: list[str]
    minutes: list[Minute] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)  # oldest first, not-scaled too

    def to_json(self) -> dict:
        return {
            "scalable_target": {
                "resource_id": self.target.resource_id,
                "min_capacity": self.target.min_capacity,
                "max_capacity": self.target.max_capacity,
            },
            "policy": {
                "policy_name": self.policy.policy_name,
                "target_value": self.policy.target_value,
                "scale_in_cooldown": self.policy.scale_in_cooldown,
                "scale_out_cooldown": self.policy.scale_out_cooldown,
                "disable_scale_in": self.policy.disable_scale_in,
            },
            "warmup_seconds": self.warmup_seconds,
            "alarms": self.alarms,
            "minutes": [m.to_json() for m in self.minutes],
            # Activities as DescribeScalingActivities shows them; the simulation starts at the
            # Unix epoch, so StartTime 00:08:00 is eight minutes in.
            "activities": [
                {
                    key: value.isoformat() if key in ("StartTime", "EndTime") else value
                    for key, value in activity.describe().items()
                }
                for activity in self.activities
            ],
        }


def _check_minutes(minutes: int) -> None:
    if minutes < 1:
        raise InvalidScalingInput(f"minutes must be >= 1, not {minutes}")


def _sequential_ids():
    """Deterministic ids in uuid form, so a simulation prints the same twice."""
    counter = iter(range(1, 1 << 62))
    return lambda: str(uuid.UUID(int=next(counter)))


def simulate(
    requests: Sequence[float],
    target: ScalableTarget,
    policy: TargetTrackingPolicy,
    *,
    warmup_seconds: int = DEFAULT_WARMUP_SECONDS,
) -> Simulation:
    """Run the policy over `requests` (one value per minute), from `min_capacity` instances."""
    _check_minutes(len(requests))
    if warmup_seconds < 0:
        raise InvalidScalingInput(f"warm-up must be >= 0 seconds, not {warmup_seconds}")
    if target.min_capacity < 1:
        raise InvalidScalingInput(
            "the simulator needs min capacity >= 1 (a real-time variant does not scale to zero)"
        )
    clock = ManualClock()
    engine = Engine(target, policy, new_id=_sequential_ids())
    result = Simulation(
        target, policy, warmup_seconds, alarms=[alarm.name for alarm in engine.alarms]
    )
    in_service = desired = target.min_capacity
    due: float | None = None  # when the in-progress scale-out's instances serve
    for minute, load in enumerate(requests):
        clock.advance(PERIOD_SECONDS)
        now = clock.now()
        metric = load / in_service
        engine.observe(now, metric)
        seen = engine.evaluate(now, in_service)
        events: list[str] = []
        if seen.decision is not None:
            decision = seen.decision
            desired = decision.desired_capacity
            direction = "scale out" if decision.scale_out else "scale in"
            events.append(f"{direction} {decision.previous_capacity}->{desired}")
            due = now + warmup_seconds if decision.scale_out else now
        elif seen.not_scaled is not None:
            events.append(f"not scaled: {seen.reason}")
        elif seen.reason is not None and seen.reason not in NOT_SCALED_CODES:
            events.append(f"held: {seen.reason}")  # a cooldown; repeated not-scaled stay quiet
        served_by = in_service
        activity = engine.in_progress
        if activity is not None and due is not None and due <= now:
            engine.complete(activity.activity_id, now)
            in_service, due = desired, None
            events.append(f"Successful: {in_service} serving")
        result.minutes.append(
            Minute(
                minute=minute,
                requests=load,
                in_service=served_by,
                metric=metric,
                high=str(seen.high),
                low=str(seen.low) if seen.low is not None else None,
                desired=desired,
                events=tuple(events),
            )
        )
    result.activities = list(reversed(engine.activities(include_not_scaled=True)))
    return result


def write_png(simulation: Simulation, path: Path) -> None:
    """Requests/min, the metric against its target, desired and in-service instances, with the
    scaling activities marked; drawn with matplotlib's Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = simulation.minutes
    # A minute's values hold over [m, m + 1); a decision at its end lands at m + 1.
    x = [m.minute for m in rows] + [rows[-1].minute + 1]

    def steps(values: list[float]) -> list[float]:
        return values + values[-1:]

    figure = Figure(figsize=(11, 8), layout="constrained")
    FigureCanvasAgg(figure)
    requests_ax, metric_ax, instances_ax = figure.subplots(3, 1, sharex=True)
    target = simulation.policy.target_value
    figure.suptitle(
        f"{simulation.policy.policy_name} on {simulation.target.resource_id}\n"
        f"target {target:g} invocations/instance/min, "
        f"{simulation.target.min_capacity}-{simulation.target.max_capacity} instances, "
        f"cooldowns in {simulation.policy.scale_in_cooldown} s / "
        f"out {simulation.policy.scale_out_cooldown} s, warm-up {simulation.warmup_seconds} s",
        fontsize="medium",
    )
    requests_ax.step(x, steps([m.requests for m in rows]), where="post", color="tab:blue")
    requests_ax.set_ylabel("requests / min")
    metric_ax.step(
        x, steps([m.metric for m in rows]), where="post", color="tab:purple", label="metric"
    )
    metric_ax.axhline(target, color="tab:red", linestyle="--", label="target (AlarmHigh >)")
    if not simulation.policy.disable_scale_in:
        metric_ax.axhline(
            0.9 * target, color="tab:orange", linestyle=":", label="90 % of target (AlarmLow <)"
        )
    metric_ax.set_ylabel("invocations / instance")
    metric_ax.legend(loc="upper right", fontsize="small")
    instances_ax.step(
        x,
        steps([m.in_service for m in rows]),
        where="post",
        color="tab:green",
        label="in service",
    )
    instances_ax.step(
        [0] + [m.minute + 1 for m in rows],
        [simulation.target.min_capacity] + [m.desired for m in rows],
        where="post",
        color="black",
        linestyle="--",
        label="desired",
    )
    instances_ax.axhline(simulation.target.max_capacity, color="grey", linewidth=0.8)
    instances_ax.set_ylabel("instances")
    instances_ax.set_ylim(0, simulation.target.max_capacity + 1)
    instances_ax.set_xlabel("minute")
    # Activities: a solid line where one starts (red out, blue in), dotted where it completes.
    for activity in simulation.activities:
        if activity.desired_capacity is None:
            continue
        colour = "tab:red" if activity.scale_out else "tab:blue"
        start = activity.start_time / 60
        for ax in (requests_ax, metric_ax, instances_ax):
            ax.axvline(start, color=colour, alpha=0.4, linewidth=1)
            if activity.end_time is not None and activity.end_time > activity.start_time:
                ax.axvline(activity.end_time / 60, color=colour, alpha=0.4, linestyle=":")
        instances_ax.annotate(
            f"{activity.previous_capacity}->{activity.desired_capacity}",
            (start, activity.desired_capacity),
            textcoords="offset points",
            xytext=(3, 4),
            fontsize="small",
            color=colour,
        )
    instances_ax.legend(loc="upper right", fontsize="small")
    figure.savefig(path, format="png", dpi=100)
