"""The target tracking engine, driven minute by minute on a manual clock.

Each test feeds one-minute datapoints as CloudWatch would and evaluates at each period's end,
as the alarm's action re-runs every minute while in ALARM.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from ops.scaling import clock as clock_module
from ops.scaling.clock import ManualClock, RealClock
from ops.scaling.policy import (
    AlarmState,
    Engine,
    Evaluation,
    InvalidScalingInput,
    ScalableTarget,
    StatusCode,
    TargetTrackingPolicy,
)

RESOURCE = "endpoint/ep/variant/AllTraffic"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class Driver:
    """An engine, a manual clock and the variant's capacity, one minute per `minute()`."""

    def __init__(
        self,
        *,
        target: float = 10.0,
        min_capacity: int = 1,
        max_capacity: int = 10,
        capacity: int = 1,
        scale_in_cooldown: int = 300,
        scale_out_cooldown: int = 300,
        disable_scale_in: bool = False,
        max_scale_in_step: int | None = 1,
    ) -> None:
        self.clock = ManualClock()
        self.engine = Engine(
            ScalableTarget(RESOURCE, min_capacity, max_capacity),
            TargetTrackingPolicy(
                "ep-policy",
                target,
                scale_in_cooldown=scale_in_cooldown,
                scale_out_cooldown=scale_out_cooldown,
                disable_scale_in=disable_scale_in,
            ),
            max_scale_in_step=max_scale_in_step,
        )
        self.capacity = capacity

    def minute(self, metric: float, *, complete: bool = True) -> Evaluation:
        """One minute at `metric` per instance; a decision is applied and (by default)
        fulfilled at once."""
        self.clock.advance(60)
        now = self.clock.now()
        self.engine.observe(now, metric)
        seen = self.engine.evaluate(now, self.capacity)
        if seen.decision is not None and complete:
            self.fulfil()
        return seen

    def fulfil(self) -> None:
        activity = self.engine.in_progress
        assert activity is not None and activity.desired_capacity is not None
        self.engine.complete(activity.activity_id, self.clock.now())
        self.capacity = activity.desired_capacity

    def minutes(self, metric: float, count: int) -> list[Evaluation]:
        return [self.minute(metric) for _ in range(count)]


def decisions(evaluations: list[Evaluation]) -> list[int]:
    return [e.decision.desired_capacity for e in evaluations if e.decision is not None]


# Alarm datapoints


def test_two_of_three_high_datapoints_do_nothing_three_scale_out() -> None:
    driver = Driver()
    assert decisions([driver.minute(25), driver.minute(25), driver.minute(5)]) == []
    seen = [driver.minute(25), driver.minute(25)]
    assert decisions(seen) == []
    assert seen[-1].high is AlarmState.OK
    third = driver.minute(25)
    assert third.high is AlarmState.ALARM
    assert third.decision is not None and third.decision.desired_capacity == 3  # ceil(25/10)


def test_a_datapoint_at_the_target_is_not_above_it() -> None:
    driver = Driver()
    assert decisions(driver.minutes(10, 5)) == []


def test_fourteen_low_datapoints_do_nothing_fifteen_scale_in() -> None:
    driver = Driver(capacity=2)
    fourteen = driver.minutes(5, 14)  # below 9 = 90 % of the target
    assert decisions(fourteen) == []
    assert fourteen[-1].low is AlarmState.OK
    fifteenth = driver.minute(5)
    assert fifteenth.low is AlarmState.ALARM
    assert decisions([fifteenth]) == [1]


def test_a_datapoint_at_ninety_percent_of_the_target_is_not_below_it() -> None:
    driver = Driver(capacity=2)
    assert decisions(driver.minutes(9, 20)) == []


def test_no_data_means_insufficient_data_and_no_scaling() -> None:
    driver = Driver()
    driver.clock.advance(600)
    seen = driver.engine.evaluate(driver.clock.now(), 1)
    assert (seen.high, seen.low, seen.decision) == (
        AlarmState.INSUFFICIENT_DATA,
        AlarmState.INSUFFICIENT_DATA,
        None,
    )


def test_a_missing_minute_breaks_the_run_of_breaching_datapoints() -> None:
    driver = Driver()
    driver.minute(25)
    driver.clock.advance(60)  # no datapoint for this minute
    assert decisions([driver.minute(25), driver.minute(25)]) == []
    assert decisions([driver.minute(25)]) == [3]


# New capacity and clamping


def test_scale_out_is_proportional_in_one_step_and_clamped_to_max() -> None:
    driver = Driver(max_capacity=4)
    driver.minutes(15, 2)
    assert decisions([driver.minute(15)]) == [2]  # ceil(1 * 15 / 10)
    driver = Driver(max_capacity=4)
    driver.minutes(95, 2)
    assert decisions([driver.minute(95)]) == [4]  # ceil(9.5) = 10, clamped to 4


def test_at_max_capacity_the_engine_records_one_not_scaled_activity() -> None:
    driver = Driver(max_capacity=2, capacity=2)
    seen = driver.minutes(50, 6)
    assert decisions(seen) == []
    assert [e.reason for e in seen[2:]] == ["AlreadyAtMaxCapacity"] * 4
    not_scaled = driver.engine.activities(include_not_scaled=True)
    assert len(not_scaled) == 1  # one per run of identical outcomes
    assert not_scaled[0].describe()["NotScaledReasons"] == [
        {"Code": "AlreadyAtMaxCapacity", "MaxCapacity": 2}
    ]
    assert not_scaled[0].describe()["Description"] == "Attempting to scale due to alarm triggered"
    assert not_scaled[0].status_code is StatusCode.FAILED
    assert driver.engine.activities() == []  # hidden unless IncludeNotScaledActivities


def test_scale_in_stops_at_min_capacity() -> None:
    driver = Driver(min_capacity=2, capacity=3, scale_in_cooldown=0)
    seen = driver.minutes(0, 20)
    assert decisions(seen) == [2]
    assert seen[-1].reason == "AlreadyAtMinCapacity"
    assert driver.capacity == 2


def test_scale_in_never_removes_so_much_that_the_metric_would_exceed_the_target() -> None:
    # 4 instances at 6/instance carry 24: 3 instances would run at 8 (fine), 2 at 12 (too many).
    driver = Driver(capacity=4, max_scale_in_step=None)
    assert decisions(driver.minutes(6, 15)) == [3]  # ceil(4 * 6 / 10) = 3
    # Below 90 % of the target but ceil(c * m / t) == c: nothing to remove.
    driver = Driver(capacity=2)
    seen = driver.minutes(8.5, 15)
    assert decisions(seen) == []
    assert seen[-1].reason == "AlreadyAtDesiredCapacity"


# Gradual scale-in


def test_scale_in_is_gradual_one_instance_per_activity_after_each_cooldown() -> None:
    driver = Driver(capacity=4, scale_in_cooldown=120)
    seen = driver.minutes(0, 24)
    steps = [(i + 1, e.decision.desired_capacity) for i, e in enumerate(seen) if e.decision]
    # Minute 15 fires AlarmLow; each later step waits out the 120 s cooldown (evaluated each
    # minute, so every second minute), though zero traffic would allow min capacity at once.
    assert steps == [(15, 3), (17, 2), (19, 1)]
    assert [e.reason for e in seen[15:17]] == ["scale-in cooldown", None]


def test_without_a_step_limit_scale_in_goes_straight_to_the_formula() -> None:
    driver = Driver(capacity=4, max_scale_in_step=None)
    assert decisions(driver.minutes(0, 15)) == [1]


# Cooldowns


def test_scale_out_cooldown_blocks_a_second_scale_out_no_larger_than_the_first() -> None:
    driver = Driver(scale_out_cooldown=300)
    driver.minutes(25, 3)  # 1 -> 3: +2 starts the cooldown
    assert driver.capacity == 3
    # 3 instances at 13 each need ceil(3.9) = 4: +1, not larger than +2.
    held = driver.minutes(13, 4)
    assert decisions(held) == []
    assert "scale-out cooldown" in (held[-1].reason or "")
    # The cooldown (300 s from the completion) ends: the same load now scales out.
    assert decisions([driver.minute(13)]) == [4]


def test_scale_out_cooldown_lets_a_larger_scale_out_through() -> None:
    driver = Driver(scale_out_cooldown=300)
    driver.minutes(25, 3)  # 1 -> 3: +2
    # 3 instances at 30 each need 9: +6 is larger than +2, so it runs inside the cooldown.
    seen = driver.minute(30)
    assert seen.decision is not None and seen.decision.desired_capacity == 9


def test_scale_in_cooldown_blocks_scale_in() -> None:
    driver = Driver(capacity=3, scale_in_cooldown=600)
    first = driver.minutes(0, 15)
    assert decisions(first) == [2]
    held = driver.minutes(0, 9)  # 540 s: still inside the 600 s cooldown
    assert decisions(held) == []
    assert {e.reason for e in held} == {"scale-in cooldown"}
    assert decisions([driver.minute(0)]) == [1]  # 600 s after the scale-in completed


def test_scale_out_interrupts_the_scale_in_cooldown_and_ends_it() -> None:
    driver = Driver(capacity=3, scale_in_cooldown=3600)
    assert decisions(driver.minutes(0, 15)) == [2]
    # Inside the hour-long scale-in cooldown, traffic returns: the scale-out runs at once.
    assert decisions(driver.minutes(25, 3)) == [5]
    # ...and the scale-in cooldown is over: 15 quiet minutes later it scales in again,
    # 18 minutes (not an hour) after the first scale-in.
    assert decisions(driver.minutes(0, 15)) == [4]


def test_disable_scale_in_creates_no_low_alarm_and_never_scales_in() -> None:
    driver = Driver(capacity=3, disable_scale_in=True)
    assert [alarm.name for alarm in driver.engine.alarms] == [driver.engine.high_alarm.name]
    seen = driver.minutes(0, 40)
    assert decisions(seen) == []
    assert seen[-1].low is None
    driver.minutes(50, 3)
    assert driver.capacity == 10  # scale-out still works


# One change at a time, and the activity record


def test_while_a_change_is_in_progress_nothing_else_starts() -> None:
    driver = Driver(max_capacity=10)
    driver.minutes(25, 2)
    started = driver.minute(25, complete=False)
    assert started.decision is not None and started.decision.desired_capacity == 3
    waiting = [driver.minute(80, complete=False) for _ in range(3)]
    assert decisions(waiting) == []
    assert {e.reason for e in waiting} == {"TargetServicePutResourceAsUnscalable"}
    codes = [
        a.not_scaled_reasons[0]["Code"]
        for a in driver.engine.activities(include_not_scaled=True)
        if a.not_scaled_reasons
    ]
    assert codes == ["TargetServicePutResourceAsUnscalable"]
    driver.fulfil()
    assert decisions([driver.minute(80)]) == [10]  # at 3 instances, 80 each: ceil(24) -> 10


def test_activities_have_aws_fields_and_move_from_in_progress_to_successful() -> None:
    driver = Driver()
    driver.minutes(25, 2)
    seen = driver.minute(25, complete=False)
    assert seen.decision is not None
    activity = seen.decision.activity
    shape = activity.describe()
    high = driver.engine.high_alarm.name
    assert re.fullmatch(rf"TargetTracking-{RESOURCE}-AlarmHigh-{UUID}", high)
    assert shape["ServiceNamespace"] == "sagemaker"
    assert shape["ResourceId"] == RESOURCE
    assert shape["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert shape["Description"] == "Setting desired instance count to 3."
    assert shape["Cause"] == f"monitor alarm {high} in state ALARM triggered policy ep-policy"
    assert shape["StatusCode"] == "InProgress"
    assert shape["StartTime"] == datetime(1970, 1, 1, 0, 3, tzinfo=UTC)
    assert "EndTime" not in shape
    driver.clock.advance(240)
    driver.fulfil()
    done = driver.engine.activities()[0].describe()
    assert done["StatusCode"] == "Successful"
    assert done["EndTime"] == datetime(1970, 1, 1, 0, 7, tzinfo=UTC)
    assert done["StatusMessage"] == (
        "Successfully set desired instance count to 3. Change successfully fulfilled by sagemaker."
    )


def test_a_failed_change_is_recorded_and_starts_no_cooldown() -> None:
    driver = Driver(scale_out_cooldown=3600)
    driver.minutes(25, 2)
    seen = driver.minute(25, complete=False)
    assert seen.decision is not None
    failed = driver.engine.fail(seen.decision.activity.activity_id, driver.clock.now(), "quota")
    assert failed.status_code is StatusCode.FAILED
    assert failed.status_message == "Failed to set desired instance count to 3. Reason: quota"
    assert decisions([driver.minute(25)]) == [3]  # tried again next minute, no cooldown


def test_alarm_definitions_match_what_aws_creates() -> None:
    engine = Driver(target=70).engine
    high, low = engine.alarms
    assert re.fullmatch(rf"TargetTracking-{RESOURCE}-AlarmLow-{UUID}", low.name)
    policy_arn = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:x"
    high_args, low_args = high.metric_alarm(policy_arn), low.metric_alarm(policy_arn)
    for args in (high_args, low_args):
        assert args["Namespace"] == "AWS/SageMaker"
        assert args["MetricName"] == "InvocationsPerInstance"
        assert args["Statistic"] == "Sum"
        assert args["Period"] == 60
        assert args["Dimensions"] == [
            {"Name": "EndpointName", "Value": "ep"},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ]
        assert args["AlarmActions"] == [policy_arn]
    assert (high_args["ComparisonOperator"], high_args["Threshold"]) == ("GreaterThanThreshold", 70)
    assert (high_args["EvaluationPeriods"], high_args["DatapointsToAlarm"]) == (3, 3)
    assert (low_args["ComparisonOperator"], low_args["Threshold"]) == ("LessThanThreshold", 63)
    assert (low_args["EvaluationPeriods"], low_args["DatapointsToAlarm"]) == (15, 15)
    assert high.describe("us-east-1", "123456789012") == {
        "AlarmName": high.name,
        "AlarmARN": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{high.name}",
    }


# Bad input


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ScalableTarget(RESOURCE, 5, 4), "min capacity 5 exceeds max capacity 4"),
        (lambda: TargetTrackingPolicy("p", 0), "target value must be > 0"),
        (lambda: TargetTrackingPolicy("p", -3.0), "target value must be > 0"),
        (lambda: TargetTrackingPolicy("p", 70, scale_in_cooldown=-1), "scale-in-cooldown"),
        (
            lambda: Engine(ScalableTarget("endpoint/ep", 1, 2), TargetTrackingPolicy("p", 1)),
            "endpoint/<endpoint>/variant/<variant>",
        ),
    ],
)
def test_bad_targets_and_policies_are_refused(make, message: str) -> None:
    with pytest.raises(InvalidScalingInput, match=re.escape(message)):
        make()


def test_a_negative_or_nan_datapoint_is_refused() -> None:
    engine = Driver().engine
    for value in (-1.0, float("nan")):
        with pytest.raises(InvalidScalingInput):
            engine.observe(60, value)


# Clocks


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(start=100)
    assert clock.now() == 100
    clock.advance(60)
    clock.sleep(30)  # code written against Clock runs instantly on a manual clock
    assert clock.now() == 190
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_real_clock_compresses_policy_seconds_by_time_scale(monkeypatch) -> None:
    wall = {"monotonic": 1000.0, "slept": []}
    monkeypatch.setattr(clock_module.time, "time", lambda: 5_000.0)
    monkeypatch.setattr(clock_module.time, "monotonic", lambda: wall["monotonic"])
    monkeypatch.setattr(clock_module.time, "sleep", wall["slept"].append)
    clock = RealClock(time_scale=20)
    assert clock.now() == 5_000.0
    wall["monotonic"] += 3.0  # three wall seconds...
    assert clock.now() == 5_060.0  # ...are one 60-second metric period
    clock.sleep(300)  # a 300 s cooldown
    assert wall["slept"] == [15.0]
    with pytest.raises(ValueError):
        RealClock(time_scale=0)
