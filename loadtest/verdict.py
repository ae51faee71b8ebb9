"""Did the service scale as declared? A pure function of a recorded `Timeline`.

`judge(timeline, expectations)` returns a `Verdict`: one `Check` per expectation, each passed,
failed, or not applicable (the run gave it nothing to judge, saying why). Nothing here reads
the clock or calls AWS, so recorded timelines are judged the same way every time.

Expectations come from the declared policy (`declared`: the tfvars' endpoint settings and the
function's reserved concurrency), with the load test's own numbers (error ratio, p95) and
overrides on top. The rules follow AWS's target tracking as ops/scaling/policy.py implements it
(sources there):

- scale-out: once the endpoint's load per instance has stayed above the target for the three
  one-minute periods AlarmHigh needs, the desired count reaches ``ceil(load / target)`` (at
  least N, within [min, max]) within T policy seconds of that load starting (default 300 s:
  the three periods, one more for CloudWatch to evaluate, one for slack), rising above the
  instances that served the load when it crossed (a count already that high before does not
  count: only rows from the crossing on are searched);
- never above MaxCapacity, in the desired or the current count or any activity;
- during the scale-out cooldown (from a scale-out's completion) a further scale-out must add
  more instances than the one that started the cooldown; a scale-in waits for the scale-in
  cooldown after the previous scale-in (a scale-out in between cancels it);
- after the load, the count comes back to MinCapacity (or the `scale_in_to` override); with
  DisableScaleIn it never decreases;
- Lambda throttles (429) only at its concurrency limit: when a throttle came back, at least
  `reserved_concurrency` of our other invocations were in flight; and CloudWatch's
  ConcurrentExecutions never above the limit;
- errors (function errors, non-200 answers, anything but a throttle) below a ratio of all
  requests, and the p95 of successful invocations below a bound.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from loadtest.timeline import POLICY_MINUTE, Row, ScalingActivity, Timeline, Totals

HIGH_DATAPOINTS = 3  # AlarmHigh: 3 of 3 one-minute datapoints above the target
LOW_DATAPOINTS = 15  # AlarmLow: 15 of 15 below 90 % of it
LOW_THRESHOLD_FRACTION = 0.9
DEFAULT_SCALE_OUT_WITHIN = 5 * POLICY_MINUTE
DEFAULT_MAX_ERROR_RATIO = 0.01
DEFAULT_MAX_P95_MS = 5000.0
# Activity times come back with millisecond precision; cooldowns are whole seconds.
TIME_TOLERANCE = 1.0


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class Expectations:
    """What the run must show. Times are policy seconds (what the policy declares)."""

    min_capacity: int
    max_capacity: int
    target_per_instance: float  # invocations per instance per minute
    scale_out_cooldown: float
    scale_in_cooldown: float
    disable_scale_in: bool = False
    reserved_concurrency: int | None = None  # None: no reserved limit to judge throttles by
    scale_out_within: float = DEFAULT_SCALE_OUT_WITHIN  # T
    scale_out_to: int | None = None  # N; None: what the load asked for
    scale_in_to: int | None = None  # None: min_capacity
    max_error_ratio: float = DEFAULT_MAX_ERROR_RATIO
    max_p95_ms: float = DEFAULT_MAX_P95_MS


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    expected: str
    observed: str


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    counts: dict[str, float | int | None] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(check.status is not Status.FAILED for check in self.checks)

    @classmethod
    def from_json(cls, document: dict) -> Verdict:
        checks = [
            Check(c["name"], Status(c["status"]), c["expected"], c["observed"])
            for c in document.get("checks", [])
        ]
        return cls(checks=checks, counts=dict(document.get("counts", {})))

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "checks": [{**asdict(c), "status": str(c.status)} for c in self.checks],
            "counts": self.counts,
        }


def declared(
    *,
    min_capacity: int,
    max_capacity: int,
    target_per_instance: float,
    scale_out_cooldown: float,
    scale_in_cooldown: float,
    disable_scale_in: bool,
    reserved_concurrency: int | None,
    **overrides,
) -> Expectations:
    """Expectations from the declared policy; ``overrides`` that are None are ignored."""
    return Expectations(
        min_capacity=min_capacity,
        max_capacity=max_capacity,
        target_per_instance=target_per_instance,
        scale_out_cooldown=scale_out_cooldown,
        scale_in_cooldown=scale_in_cooldown,
        disable_scale_in=disable_scale_in,
        reserved_concurrency=reserved_concurrency,
        **{key: value for key, value in overrides.items() if value is not None},
    )


def judge(timeline: Timeline, expect: Expectations) -> Verdict:
    activities = capacity_changes(timeline)
    return Verdict(
        checks=[
            _scale_out(timeline, expect),
            _never_above_max(timeline, expect),
            _scale_out_cooldown(activities, expect),
            _scale_in_cooldown(activities, expect),
            _scaled_in(timeline, activities, expect),
            _throttles_at_limit(timeline, expect),
            _concurrency_within_limit(timeline, expect),
            _error_ratio(timeline, expect),
            _p95(timeline, expect),
        ],
        counts=_counts(timeline),
    )


@dataclass(frozen=True)
class CapacityChange:
    """A scaling activity that changed (or is changing) the desired count."""

    activity: ScalingActivity
    previous: int

    @property
    def added(self) -> int:
        assert self.activity.desired is not None
        return self.activity.desired - self.previous


def capacity_changes(timeline: Timeline) -> list[CapacityChange]:
    """Activities that set a new desired count, oldest first, each with the count before it
    (the previous change's, or the first desired count the watch saw)."""
    initial = next((r.desired for r in timeline.rows if r.desired is not None), None)
    changes: list[CapacityChange] = []
    current = initial
    for activity in sorted(timeline.activities, key=lambda a: a.start):
        if activity.desired is None or activity.status == "Failed":
            continue
        previous = current if current is not None else activity.desired
        if activity.desired != previous:
            changes.append(CapacityChange(activity, previous))
        current = activity.desired
    return changes


def _load_rate(row: Row, timeline: Timeline) -> float:
    """The endpoint's invocations in the row, as a rate per policy minute."""
    return row.endpoint_load / row.interval * timeline.period if row.interval > 0 else 0.0


def _serving(rows: list[Row], index: int) -> int:
    """Instances that served row `index`: those in service when it began (the previous row's
    count; a change during the row is late in it, as the watch sees it at the row's end)."""
    for row in (rows[index - 1] if index > 0 else None, rows[index]):
        if row is not None and row.current:
            return row.current
    return 1


def _sustained_crossing(timeline: Timeline, target: float) -> tuple[int, float] | None:
    """(index of the first row, lowest load per policy minute) of the first stretch in which
    the load per instance stayed above the target for AlarmHigh's three periods, or None."""
    rows = timeline.rows
    window = HIGH_DATAPOINTS * timeline.period
    slack = 0.1 * timeline.period  # rows end a few milliseconds after the period boundaries
    for i, first in enumerate(rows):
        start = first.t - first.interval
        end = start + window - slack
        covered = [r for r in rows[i:] if r.t - r.interval < end]
        if not covered or covered[-1].t < end:
            return None  # the run ended before three periods had passed
        rates = []
        for offset, row in enumerate(covered):
            instances = _serving(rows, i + offset)
            rate = _load_rate(row, timeline)
            if rate / instances <= target:
                break
            rates.append(rate)
        else:
            return i, min(rates)
    return None


def _scale_out(timeline: Timeline, expect: Expectations) -> Check:
    name = "scaled out"
    if all(r.desired is None for r in timeline.rows):
        expected = f">= {expect.scale_out_to} instances" if expect.scale_out_to else "-"
        status = Status.FAILED if expect.scale_out_to else Status.NOT_APPLICABLE
        return Check(name, status, expected, "no instance counts recorded")
    crossing = _sustained_crossing(timeline, expect.target_per_instance)
    within_wall = expect.scale_out_within / timeline.time_scale
    if crossing is None:
        expected = f">= {expect.scale_out_to} instances" if expect.scale_out_to else "-"
        observed = (
            f"the load per instance never stayed above the target "
            f"({expect.target_per_instance:g}/min) for {HIGH_DATAPOINTS} minutes"
        )
        status = Status.FAILED if expect.scale_out_to else Status.NOT_APPLICABLE
        return Check(name, status, expected, observed)
    first, rate = crossing
    rows = timeline.rows
    start = rows[first].t - rows[first].interval
    # A scale-out is a rise above the instances that served the load when it crossed; a count
    # already that high before it (an earlier scale-out not yet undone) is not one.
    before = _serving(rows, first)
    wanted = expect.scale_out_to or min(
        max(math.ceil(rate / expect.target_per_instance - 1e-9), expect.min_capacity),
        expect.max_capacity,
    )
    expected = (
        f">= {wanted} desired instances, more than the {before} serving, within "
        f"{expect.scale_out_within:g} s of the load exceeding the target (from t={start:.0f} s, "
        f"{rate:.0f} invocations/min)"
    )
    # The watch sees a change at its next row, up to one interval late.
    deadline = start + within_wall
    since = rows[first:]
    reached = next(
        (r for r in since if r.desired is not None and r.desired >= wanted and r.desired > before),
        None,
    )
    if reached is None:
        most = max((r.desired for r in since if r.desired is not None), default=None)
        return Check(
            name,
            Status.FAILED,
            expected,
            f"never reached; at most {most} desired from t={start:.0f} s",
        )
    late = reached.t - reached.interval > deadline
    observed = f"{reached.desired} desired at t={reached.t:.0f} s"
    if reached.current is not None:
        serving = next(
            (r for r in since if r.current is not None and r.current >= max(wanted, before + 1)),
            None,
        )
        if serving is not None:
            observed += f", {serving.current} in service at t={serving.t:.0f} s"
    return Check(name, Status.FAILED if late else Status.PASSED, expected, observed)


def _never_above_max(timeline: Timeline, expect: Expectations) -> Check:
    name = "never above max"
    expected = f"<= {expect.max_capacity} instances"
    counts = [
        (row.t, value)
        for row in timeline.rows
        for value in (row.desired, row.current)
        if value is not None
    ]
    if not counts and not timeline.activities:
        return Check(name, Status.NOT_APPLICABLE, expected, "no instance counts recorded")
    for t, value in counts:
        if value > expect.max_capacity:
            return Check(name, Status.FAILED, expected, f"{value} instances at t={t:.0f} s")
    for activity in timeline.activities:
        if activity.desired is not None and activity.desired > expect.max_capacity:
            return Check(name, Status.FAILED, expected, f"activity: {activity.description}")
    most = max((value for _, value in counts), default=None)
    return Check(name, Status.PASSED, expected, f"at most {most}")


def _scale_out_cooldown(changes: list[CapacityChange], expect: Expectations) -> Check:
    name = "scale-out cooldown"
    expected = (
        f"a scale-out within {expect.scale_out_cooldown:g} s of the previous one's end adds "
        "more instances than it did"
    )
    outs = [c for c in changes if c.added > 0]
    if len(outs) < 2:
        return Check(name, Status.NOT_APPLICABLE, expected, f"{len(outs)} scale-out(s)")
    for before, after in itertools.pairwise(outs):
        end = before.activity.end
        if end is None:
            continue
        gap = after.activity.start - end
        if gap < expect.scale_out_cooldown - TIME_TOLERANCE and after.added <= before.added:
            return Check(
                name,
                Status.FAILED,
                expected,
                f"+{after.added} ({after.activity.description}) {gap:.0f} s after "
                f"+{before.added} ended",
            )
    gaps = ", ".join(
        f"+{o.added}" + (f" at {o.activity.start - outs[0].activity.start:.0f} s" if i else "")
        for i, o in enumerate(outs)
    )
    return Check(name, Status.PASSED, expected, f"scale-outs {gaps}")


def _scale_in_cooldown(changes: list[CapacityChange], expect: Expectations) -> Check:
    name = "scale-in cooldown"
    expected = f"scale-ins at least {expect.scale_in_cooldown:g} s after the previous one's end"
    pairs = [
        (before, after)
        for before, after in itertools.pairwise(changes)
        if before.added < 0 and after.added < 0
    ]
    if not pairs:
        return Check(name, Status.NOT_APPLICABLE, expected, "no consecutive scale-ins")
    shortest = math.inf
    for before, after in pairs:
        if before.activity.end is None:
            continue
        gap = after.activity.start - before.activity.end
        if gap < expect.scale_in_cooldown - TIME_TOLERANCE:
            return Check(
                name,
                Status.FAILED,
                expected,
                f"{after.activity.description} {gap:.0f} s after the previous scale-in ended",
            )
        shortest = min(shortest, gap)
    return Check(name, Status.PASSED, expected, f"shortest gap {shortest:.0f} s")


def _scaled_in(timeline: Timeline, changes: list[CapacityChange], expect: Expectations) -> Check:
    name = "scaled in"
    if expect.disable_scale_in:
        expected = "no scale-in (DisableScaleIn)"
        ins = [c for c in changes if c.added < 0]
        if ins:
            return Check(name, Status.FAILED, expected, ins[0].activity.description)
        return Check(name, Status.PASSED, expected, "none")
    floor = expect.scale_in_to if expect.scale_in_to is not None else expect.min_capacity
    expected = f"back to <= {floor} in service after the load"
    counted = [r for r in timeline.rows if r.current is not None]
    if not counted:
        return Check(name, Status.NOT_APPLICABLE, expected, "no instance counts recorded")
    peak = max(r.current for r in counted)
    if peak <= floor:
        return Check(name, Status.NOT_APPLICABLE, expected, f"never above {floor} in service")
    last_peak = max(i for i, r in enumerate(counted) if r.current == peak)
    back = next((r for r in counted[last_peak:] if r.current <= floor), None)
    if back is None:
        end = counted[-1]
        low = LOW_THRESHOLD_FRACTION * expect.target_per_instance
        rows = timeline.rows
        busy = [r for i, r in enumerate(rows) if _load_rate(r, timeline) / _serving(rows, i) >= low]
        quiet_since = busy[-1].t if busy else counted[0].t - counted[0].interval
        quiet = (end.t - quiet_since) * timeline.time_scale
        return Check(
            name,
            Status.FAILED,
            expected,
            f"still {end.current} at the end (t={end.t:.0f} s), after a peak of {peak}; the load "
            f"was under AlarmLow's threshold ({low:g}/instance/min) for the last {quiet:.0f} "
            f"policy s, and AlarmLow needs {LOW_DATAPOINTS * POLICY_MINUTE:.0f}",
        )
    return Check(name, Status.PASSED, expected, f"{back.current} at t={back.t:.0f} s, from {peak}")


def _throttles_at_limit(timeline: Timeline, expect: Expectations) -> Check:
    name = "throttled only at the limit"
    limit = expect.reserved_concurrency
    throttled = [r for r in timeline.rows if r.throttles > 0]
    expected = (
        f"throttles only with >= {limit} invocations in flight"
        if limit is not None
        else "throttles only at a concurrency limit"
    )
    if not throttled:
        most = max((r.in_flight_max for r in timeline.rows), default=0)
        return Check(name, Status.PASSED, expected, f"no throttles; at most {most} in flight")
    if limit is None:
        total = sum(r.throttles for r in throttled)
        return Check(name, Status.NOT_APPLICABLE, expected, f"{total} throttles, no reserved limit")
    for row in throttled:
        if row.throttled_at_in_flight is not None and row.throttled_at_in_flight < limit:
            return Check(
                name,
                Status.FAILED,
                expected,
                f"a throttle with only {row.throttled_at_in_flight} in flight at t={row.t:.0f} s",
            )
    total = sum(r.throttles for r in throttled)
    fewest = min(
        (r.throttled_at_in_flight for r in throttled if r.throttled_at_in_flight is not None),
        default=None,
    )
    return Check(
        name, Status.PASSED, expected, f"{total} throttles, each with >= {fewest} in flight"
    )


def _concurrency_within_limit(timeline: Timeline, expect: Expectations) -> Check:
    name = "concurrency within reserved"
    limit = expect.reserved_concurrency
    expected = f"ConcurrentExecutions <= {limit}" if limit is not None else "-"
    values = [(r.t, r.lambda_concurrent) for r in timeline.rows if r.lambda_concurrent is not None]
    if limit is None or not values:
        observed = "no reserved limit" if limit is None else "no ConcurrentExecutions datapoints"
        return Check(name, Status.NOT_APPLICABLE, expected, observed)
    t, most = max(values, key=lambda item: item[1])
    status = Status.FAILED if most > limit else Status.PASSED
    return Check(name, status, expected, f"at most {most:g} (t={t:.0f} s)")


def _totals(timeline: Timeline) -> Totals:
    """The timeline's totals, or (a hand-made timeline) the rows' sums without a p95."""
    if timeline.totals is not None:
        return timeline.totals
    rows = timeline.rows
    return Totals(
        requests=sum(r.requests for r in rows),
        successes=sum(r.successes for r in rows),
        throttles=sum(r.throttles for r in rows),
        function_errors=sum(r.function_errors for r in rows),
        handler_errors=sum(r.handler_errors for r in rows),
        other_errors=sum(r.other_errors for r in rows),
        p95_ms=None,
    )


def _error_ratio(timeline: Timeline, expect: Expectations) -> Check:
    name = "error ratio"
    totals = _totals(timeline)
    expected = f"< {expect.max_error_ratio:g} of requests (throttles not counted)"
    if totals.requests == 0:
        return Check(name, Status.FAILED, expected, "no request finished")
    ratio = totals.errors / totals.requests
    observed = (
        f"{ratio:.4f} ({totals.function_errors} function errors, {totals.handler_errors} "
        f"non-200 answers, {totals.other_errors} other, of {totals.requests})"
    )
    return Check(
        name, Status.PASSED if ratio < expect.max_error_ratio else Status.FAILED, expected, observed
    )


def _p95(timeline: Timeline, expect: Expectations) -> Check:
    name = "p95 latency"
    totals = _totals(timeline)
    expected = f"< {expect.max_p95_ms:g} ms (successful invocations)"
    if totals.p95_ms is None:
        return Check(name, Status.FAILED, expected, "no successful invocation")
    status = Status.PASSED if totals.p95_ms < expect.max_p95_ms else Status.FAILED
    return Check(name, status, expected, f"{totals.p95_ms:.0f} ms")


def _metric_sum(rows: list[Row], attribute: str) -> float | None:
    values = [getattr(r, attribute) for r in rows if getattr(r, attribute) is not None]
    return sum(values) if values else None


def _counts(timeline: Timeline) -> dict[str, float | int | None]:
    """Both sides' counts: ours, and what CloudWatch recorded for the function and endpoint."""
    totals = _totals(timeline)
    rows = timeline.rows
    return {
        "requests": totals.requests,
        "successes": totals.successes,
        "throttles": totals.throttles,
        "function_errors": totals.function_errors,
        "handler_errors": totals.handler_errors,
        "other_errors": totals.other_errors,
        "p95_ms": totals.p95_ms,
        "lambda_invocations": _metric_sum(rows, "lambda_invocations"),
        "lambda_throttles": _metric_sum(rows, "lambda_throttles"),
        "lambda_errors": _metric_sum(rows, "lambda_errors"),
        "endpoint_invocations": _metric_sum(rows, "endpoint_invocations"),
        "scaling_activities": len(timeline.activities),
    }
