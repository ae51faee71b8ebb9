"""The verdict on recorded timelines: one the policy engine produced (ops scaling simulate),
which must pass, and the same timeline broken in each way the verdict exists to catch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from loadtest.timeline import Row, ScalingActivity, Timeline, Totals
from loadtest.verdict import Status, declared, judge
from ops.scaling.policy import ScalableTarget, TargetTrackingPolicy
from ops.scaling.simulate import profile, simulate

TIME_SCALE = 60.0  # one policy minute per wall second: a row per simulated minute
TARGET = ScalableTarget("endpoint/dogs/variant/AllTraffic", min_capacity=1, max_capacity=4)
POLICY = TargetTrackingPolicy(
    "dogs-AllTraffic-invocations", target_value=70, scale_in_cooldown=30, scale_out_cooldown=300
)
EXPECT = declared(
    min_capacity=1,
    max_capacity=4,
    target_per_instance=70,
    scale_out_cooldown=300,
    scale_in_cooldown=30,
    disable_scale_in=False,
    reserved_concurrency=100,
)


def recorded(requests: list[float], warmup: int = 300, **policy) -> Timeline:
    """A timeline as the watch would record the simulated endpoint: a row per policy minute,
    the minute's requests all served (CloudWatch's endpoint Invocations), the counts after the
    minute's evaluation, every activity seen at the row of its start."""
    run = simulate(requests, TARGET, dataclasses.replace(POLICY, **policy), warmup_seconds=warmup)
    rows = []
    current = TARGET.min_capacity
    for minute in run.minutes:
        if any(e.startswith("Successful") for e in minute.events):
            current = minute.desired
        count = round(minute.requests)
        rows.append(
            Row(
                t=minute.minute + 1.0,
                interval=1.0,
                users=count // 60,
                requests=count,
                successes=count,
                throttles=0,
                function_errors=0,
                handler_errors=0,
                other_errors=0,
                p95_ms=180.0,
                in_flight_max=3,
                desired=minute.desired,
                current=current,
                endpoint_invocations=minute.requests,
            )
        )
    activities = [
        ScalingActivity(
            activity_id=a.activity_id,
            description=a.description,
            status=str(a.status_code),
            desired=a.desired_capacity,
            start=a.start_time,
            end=a.end_time,
            seen_at=a.start_time / TIME_SCALE,
        )
        for a in run.activities
        if a.desired_capacity is not None
    ]
    total = sum(r.requests for r in rows)
    return Timeline(
        function="classifier:live",
        endpoint=TARGET.resource_id,
        started_at=1_800_000_000.0,
        time_scale=TIME_SCALE,
        rows=rows,
        activities=activities,
        totals=Totals(total, total, 0, 0, 0, 0, p95_ms=180.0),
    )


SPIKE = profile("spike", 45, base=35, peak=259)  # 259 = 3.7 x target: 4 instances


def status(verdict, name: str) -> Status:
    (check,) = [c for c in verdict.checks if c.name == name]
    return check.status


def test_the_engines_own_run_passes_every_check():
    verdict = judge(recorded(SPIKE), EXPECT)
    assert verdict.passed, verdict.to_json()
    assert status(verdict, "scaled out") is Status.PASSED
    assert status(verdict, "scaled in") is Status.PASSED
    assert status(verdict, "scale-in cooldown") is Status.PASSED
    assert "4 desired at t=13 s" in _observed(verdict, "scaled out")


def _observed(verdict, name: str) -> str:
    return next(c.observed for c in verdict.checks if c.name == name)


def test_instances_that_start_within_alarmhighs_third_minute_do_not_hide_the_load():
    # Without a warm-up the 4 instances are in service by the end of the minute that fired
    # AlarmHigh: that minute was still served by one.
    verdict = judge(recorded(SPIKE, warmup=0), EXPECT)
    assert status(verdict, "scaled out") is Status.PASSED, verdict.to_json()


def test_a_verdict_survives_its_json():
    timeline = recorded(SPIKE)
    again = Timeline.from_json(timeline.to_json())
    assert judge(again, EXPECT).to_json() == judge(timeline, EXPECT).to_json()


def test_scaling_above_max_fails():
    timeline = recorded(SPIKE)
    timeline.rows[20] = dataclasses.replace(timeline.rows[20], desired=5, current=5)
    verdict = judge(timeline, EXPECT)
    assert not verdict.passed
    assert status(verdict, "never above max") is Status.FAILED
    assert "5 instances at t=21 s" in _observed(verdict, "never above max")


def test_an_activity_above_max_fails_even_if_no_row_saw_it():
    timeline = recorded(SPIKE)
    first = timeline.activities[0]
    timeline.activities[0] = dataclasses.replace(
        first, desired=6, description="Setting desired instance count to 6."
    )
    assert status(judge(timeline, EXPECT), "never above max") is Status.FAILED


def test_never_scaling_in_fails():
    timeline = recorded(SPIKE, disable_scale_in=True)  # the endpoint holds 4 to the end
    verdict = judge(timeline, EXPECT)
    assert status(verdict, "scaled in") is Status.FAILED
    assert "still 4 at the end" in _observed(verdict, "scaled in")
    # Declared DisableScaleIn: holding is right, and a scale-in would be wrong.
    assert judge(timeline, dataclasses.replace(EXPECT, disable_scale_in=True)).passed
    assert status(judge(recorded(SPIKE), dataclasses.replace(EXPECT, disable_scale_in=True)),
                  "scaled in") is Status.FAILED  # fmt: skip


def test_a_tail_too_short_to_scale_in_fails_and_says_how_long_it_was():
    timeline = recorded(SPIKE)
    timeline.rows = timeline.rows[:30]  # the load fell at minute 20: 10 quiet minutes of 15
    observed = _observed(judge(timeline, EXPECT), "scaled in")
    assert "still 4" in observed
    assert "for the last 600 policy s, and AlarmLow needs 900" in observed


def test_a_throttle_below_the_reserved_limit_fails():
    timeline = recorded(SPIKE)
    timeline.rows[12] = dataclasses.replace(
        timeline.rows[12], throttles=2, throttled_at_in_flight=10
    )
    verdict = judge(timeline, EXPECT)
    assert status(verdict, "throttled only at the limit") is Status.FAILED
    assert "only 10 in flight" in _observed(verdict, "throttled only at the limit")


def test_throttles_at_the_limit_pass():
    timeline = recorded(SPIKE)
    timeline.rows[12] = dataclasses.replace(
        timeline.rows[12], throttles=7, throttled_at_in_flight=100, in_flight_max=107
    )
    verdict = judge(timeline, EXPECT)
    assert status(verdict, "throttled only at the limit") is Status.PASSED
    assert verdict.passed


def test_concurrency_above_reserved_in_cloudwatch_fails():
    timeline = recorded(SPIKE)
    timeline.rows[12] = dataclasses.replace(timeline.rows[12], lambda_concurrent=101.0)
    assert status(judge(timeline, EXPECT), "concurrency within reserved") is Status.FAILED


def _activity(activity_id: str, desired: int, start: float, end: float) -> ScalingActivity:
    return ScalingActivity(
        activity_id=activity_id,
        description=f"Setting desired instance count to {desired}.",
        status="Successful",
        desired=desired,
        start=start,
        end=end,
        seen_at=start / TIME_SCALE,
    )


def test_a_scale_out_inside_the_cooldown_that_is_not_larger_fails():
    # 1 -> 2 completes at minute 10; 2 -> 3 starts 2 minutes later, inside the 300 s cooldown,
    # and adds no more than the first.
    timeline = recorded([35.0] * 20)
    timeline.activities = [
        _activity("a", 2, start=5 * 60, end=10 * 60),
        _activity("b", 3, start=12 * 60, end=17 * 60),
    ]
    verdict = judge(timeline, EXPECT)
    assert status(verdict, "scale-out cooldown") is Status.FAILED
    assert "+1" in _observed(verdict, "scale-out cooldown")
    # Larger (+2) is allowed during the cooldown; after it, any is.
    larger = [timeline.activities[0], _activity("b", 4, start=12 * 60, end=17 * 60)]
    assert status(judge(dataclasses.replace(timeline, activities=larger), EXPECT),
                  "scale-out cooldown") is Status.PASSED  # fmt: skip
    later = [timeline.activities[0], _activity("b", 3, start=15 * 60, end=20 * 60)]
    assert status(judge(dataclasses.replace(timeline, activities=later), EXPECT),
                  "scale-out cooldown") is Status.PASSED  # fmt: skip


def test_a_scale_in_inside_the_scale_in_cooldown_fails():
    timeline = recorded([35.0] * 20)
    timeline.rows = [dataclasses.replace(r, desired=4, current=4) if r.t <= 1 else r
                     for r in timeline.rows]  # fmt: skip
    timeline.activities = [
        _activity("a", 3, start=5 * 60, end=5 * 60 + 10),
        _activity("b", 2, start=5 * 60 + 20, end=5 * 60 + 30),  # 10 s after, cooldown 30 s
    ]
    verdict = judge(timeline, EXPECT)
    assert status(verdict, "scale-in cooldown") is Status.FAILED


def test_a_late_scale_out_fails():
    timeline = recorded(SPIKE)
    # Hold the desired count at 1 until minute 18: 8 minutes after the load crossed.
    timeline.rows = [dataclasses.replace(r, desired=1, current=1) if r.t <= 18 else r
                     for r in timeline.rows]  # fmt: skip
    verdict = judge(timeline, EXPECT)
    assert status(verdict, "scaled out") is Status.FAILED
    # Given more time (T), the same run passes.
    patient = dataclasses.replace(EXPECT, scale_out_within=600)
    assert status(judge(timeline, patient), "scaled out") is Status.PASSED


def test_scaling_out_short_of_what_the_load_asked_fails():
    timeline = recorded(SPIKE)
    timeline.rows = [dataclasses.replace(r, desired=min(r.desired, 2)) for r in timeline.rows]
    verdict = judge(timeline, EXPECT)
    assert status(verdict, "scaled out") is Status.FAILED
    assert "at most 2 desired" in _observed(verdict, "scaled out")


def test_a_count_already_reached_before_the_load_is_not_a_scale_out():
    timeline = recorded(SPIKE)  # the load crosses the target in the row ending at t=11
    # Desired already 4 before the load (current lagging at 1), then back to 1 and never up.
    timeline.rows = [dataclasses.replace(r, desired=4 if r.t <= 10 else 1, current=1)
                     for r in timeline.rows]  # fmt: skip
    timeline.activities = []
    verdict = judge(timeline, EXPECT)
    assert status(verdict, "scaled out") is Status.FAILED, _observed(verdict, "scaled out")
    assert "at most 1 desired from t=10 s" in _observed(verdict, "scaled out")


def test_a_desired_count_that_never_rises_above_the_serving_one_is_not_a_scale_out():
    timeline = recorded(SPIKE)
    timeline.rows = [dataclasses.replace(r, desired=1, current=1) for r in timeline.rows]
    timeline.activities = []
    # Asked for at least 1 instance: the count is "reached", but nothing scaled out.
    asked = dataclasses.replace(EXPECT, scale_out_to=1)
    verdict = judge(timeline, asked)
    assert status(verdict, "scaled out") is Status.FAILED
    assert "more than the 1 serving" in next(
        c.expected for c in verdict.checks if c.name == "scaled out"
    )


def test_no_scale_out_is_expected_under_the_target_unless_asked_for():
    quiet = recorded([35.0] * 20)
    assert status(judge(quiet, EXPECT), "scaled out") is Status.NOT_APPLICABLE
    assert judge(quiet, EXPECT).passed
    asked = dataclasses.replace(EXPECT, scale_out_to=2)
    assert status(judge(quiet, asked), "scaled out") is Status.FAILED


def test_without_instance_counts_scaling_is_not_judged_unless_asked_for():
    timeline = recorded(SPIKE)  # the load asks for 4 instances
    timeline.rows = [dataclasses.replace(r, desired=None, current=None) for r in timeline.rows]
    timeline.activities = []
    verdict = judge(timeline, EXPECT)
    for name in ("scaled out", "never above max", "scaled in"):
        assert status(verdict, name) is Status.NOT_APPLICABLE
    asked = dataclasses.replace(EXPECT, scale_out_to=4)
    assert status(judge(timeline, asked), "scaled out") is Status.FAILED


def test_errors_and_latency_beyond_their_bounds_fail():
    timeline = recorded(SPIKE)
    totals = timeline.totals
    timeline.totals = dataclasses.replace(totals, successes=totals.requests - 500,
                                          handler_errors=500, p95_ms=9000.0)  # fmt: skip
    verdict = judge(timeline, EXPECT)
    assert status(verdict, "error ratio") is Status.FAILED
    assert status(verdict, "p95 latency") is Status.FAILED
    lenient = dataclasses.replace(EXPECT, max_error_ratio=0.5, max_p95_ms=10_000)
    assert judge(timeline, lenient).passed


def test_a_run_without_requests_fails():
    timeline = Timeline(
        "classifier", None, 0.0, 1.0, rows=[], totals=Totals(0, 0, 0, 0, 0, 0, None)
    )
    verdict = judge(timeline, EXPECT)
    assert not verdict.passed
    assert status(verdict, "error ratio") is Status.FAILED


def test_overrides_left_unset_keep_the_defaults():
    policy = {
        "min_capacity": 1,
        "max_capacity": 4,
        "target_per_instance": 70,
        "scale_out_cooldown": 300,
        "scale_in_cooldown": 30,
        "disable_scale_in": False,
        "reserved_concurrency": 100,
    }
    assert declared(**policy, max_p95_ms=None, scale_out_to=None) == EXPECT
    strict = declared(**policy, max_p95_ms=100.0)
    assert status(judge(recorded(SPIKE), strict), "p95 latency") is Status.FAILED


TIMELINES = Path(__file__).parent / "timelines"


def test_a_recorded_local_run_passes_and_fails_where_it_must():
    """A real run (ops loadtest on the local cloud at time scale 10: one user, then five at
    30 requests/min each, against a one-instance endpoint under the mission's policy): 1 -> 3
    instances, back to 1. Its rows end a few milliseconds off the period boundaries."""
    timeline = Timeline.load(TIMELINES / "local-spike-1-3-1.json")
    verdict = judge(timeline, EXPECT)
    assert verdict.passed, verdict.to_json()
    assert status(verdict, "scaled out") is Status.PASSED
    assert status(verdict, "scaled in") is Status.PASSED
    assert [a.desired for a in timeline.activities] == [3, 2, 1]
    assert status(judge(timeline, dataclasses.replace(EXPECT, max_capacity=2)),
                  "never above max") is Status.FAILED  # fmt: skip
    # Declared a 90 s scale-in cooldown, the two scale-ins 57 s apart break it.
    assert status(judge(timeline, dataclasses.replace(EXPECT, scale_in_cooldown=90)),
                  "scale-in cooldown") is Status.FAILED  # fmt: skip
    # Had the policy asked for 4 instances, 3 is too few.
    assert status(judge(timeline, dataclasses.replace(EXPECT, scale_out_to=4)),
                  "scaled out") is Status.FAILED  # fmt: skip


def test_a_recorded_run_of_the_trained_model_scaled_out_twice_within_the_cooldown():
    """`ops loadtest --time-scale 10` with [tool.locust]'s load against the model `ops train`
    made, promoted by `ops promote-endpoint`: 1 -> 2, then 2 -> 4 one policy minute after the
    first completed (inside the 300 s cooldown, allowed as it adds more), and back to 1."""
    timeline = Timeline.load(TIMELINES / "local-resnet-1-2-4-1.json")
    assert [a.desired for a in timeline.activities] == [2, 4, 3, 2, 1]
    assert judge(timeline, EXPECT).passed
    # Had the second scale-out added no more than the first, the cooldown forbade it.
    first, second, *rest = timeline.activities
    smaller = dataclasses.replace(
        second, desired=3, description="Setting desired instance count to 3."
    )
    broken = dataclasses.replace(timeline, activities=[first, smaller, *rest])
    assert status(judge(broken, EXPECT), "scale-out cooldown") is Status.FAILED
