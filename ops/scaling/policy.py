"""Target tracking, as Application Auto Scaling does it for a SageMaker endpoint variant.

Pure: no I/O, no threads, no clock of its own. The caller feeds one-minute datapoints with
`Engine.observe`, asks `Engine.evaluate(now, current_capacity)` after each, applies the
`ScalingDecision` it may return (UpdateEndpointWeightsAndCapacities on the variant) and reports
the outcome with `Engine.complete` or `Engine.fail`. The local cloud drives it with a real clock
compressed by `time_scale`, `ops scaling simulate` and the tests with a manual one.

The semantics, with sources (AWS-SEMANTICS.md beside DESIGN.md has the full list):

Alarms. PutScalingPolicy creates two CloudWatch alarms on the policy's metric, named
``TargetTracking-<ResourceId>-AlarmHigh-<uuid>`` and ``...-AlarmLow-<uuid>`` [1]:
AlarmHigh is ``> TargetValue`` for 3 of 3 one-minute datapoints, AlarmLow is
``< 0.9 * TargetValue`` for 15 of 15 [2]. With DisableScaleIn only AlarmHigh exists (we create
no alarm that could only scale in). Missing datapoints are "missing": an alarm without data is
INSUFFICIENT_DATA and nothing scales [3]; one short of its datapoints is OK (we do not look
further back, as CloudWatch may). While an alarm stays in ALARM its Auto Scaling action runs
again every minute [4]: `evaluate` is meant to be called once per period.

The metric. ``SageMakerVariantInvocationsPerInstance`` is ``AWS/SageMaker``
``InvocationsPerInstance`` (dimensions EndpointName, VariantName), statistic Sum over 60 s:
each request counts ``1/n`` for the ``n`` instances in service when it arrived, so the
one-minute Sum is the invocations per instance in that minute [5]. A customised metric
(`MetricSpec`) is used the same way: the caller computes its value.

New capacity. ``ceil(current * metric / target)`` clamped to [MinCapacity, MaxCapacity]: the
fewest instances that bring the metric to the target or below. AWS publishes no formula; it
says it scales out "proportionally to the metric as fast as it can", rounds so as never to add
too little or remove too much, and will not scale in when removing one unit would push the
metric back above the target [6] -- which this rounding also guarantees. Scale-in is "more
gradual" [6], in "smaller periodic steps" [7]: besides the 15-minute alarm, we remove at most
`max_scale_in_step` instances (default 1) per scale-in activity [inferred; the step size is
unpublished].

Cooldowns [8]. Each starts when its activity completes (a SageMaker activity stays InProgress
until the new instances are in service: a recorded one ran 7 minutes [9]).
- Scale-out cooldown: "the capacity added by the initiating scale-out is calculated as part of
  the desired capacity for the next", and no further increase happens "unless a larger scale
  out is triggered": during it, a scale-out must add more instances than the one that started
  it [inferred reading of "larger"].
- Scale-in cooldown: no scale-in until it ends. A scale-out during it runs at once, and the
  scale-in cooldown "stops and doesn't complete".

One change at a time. SageMaker refuses to update an endpoint that is Updating [10], so while
an activity is InProgress the engine starts none and records the not-scaled reason
``TargetServicePutResourceAsUnscalable`` ("Application Auto Scaling will retry") [11].

Activities [11][9] have DescribeScalingActivities' fields: Description
``Setting desired instance count to 3.``, Cause ``monitor alarm <alarm> in state ALARM triggered
policy <policy>``, StatusCode InProgress -> Successful | Failed, StatusMessage ``Successfully set
desired instance count to 3. Change successfully fulfilled by sagemaker.``. A decision not to
scale (``AlreadyAtMaxCapacity``, ``AlreadyAtMinCapacity``, ``AlreadyAtDesiredCapacity``, the one
above) is a not-scaled activity: Description ``Attempting to scale due to alarm triggered``,
StatusCode Failed, NotScaledReasons; shown only with IncludeNotScaledActivities. We record one
per run of identical outcomes rather than one a minute [inferred].

[1] https://docs.aws.amazon.com/autoscaling/application/userguide/create-target-tracking-policy-cli.html
[2] https://repost.aws/questions/QUf450Wsd9RROGGOIwaolN9w ("> 1500 for 3 datapoints within 3
    minutes", "< 1350 for 15 datapoints within 15 minutes" for a target of 1500);
    https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html ("63 percent (90
    percent of the 70 percent target)")
[3] https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html
    ("does not perform scaling when the specified metric has insufficient data")
[4] https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-actions.html
[5] https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
[6] https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html
[7] https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html
[8] https://docs.aws.amazon.com/autoscaling/application/APIReference/API_TargetTrackingScalingPolicyConfiguration.html
    (defaults 300 s for SageMaker variants)
[9] a real SageMaker activity, StartTime 02:28:13 -> EndTime 02:35:19 (AWS-SEMANTICS.md A4)
[10] ``Cannot update in-progress endpoint`` (AWS-SEMANTICS.md B1); "auto scaling is blocked while
    UpdateEndpoint is in progress", https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling.html
[11] https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-scaling-activities.html
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from ops.errors import OpsError

PERIOD_SECONDS = 60
HIGH_DATAPOINTS = 3
LOW_DATAPOINTS = 15
LOW_THRESHOLD_FRACTION = 0.9
DEFAULT_COOLDOWN = 300  # seconds, both directions, for SageMaker variants [8]
ACTIVITY_LOOKBACK = 42 * 24 * 3600  # DescribeScalingActivities looks back six weeks

# What a scaling activity's Description calls the capacity, by scalable dimension (AWS's
# wording; ECS says "desired count"). Anything else is "capacity".
_CAPACITY_NOUN = {
    "sagemaker:variant:DesiredInstanceCount": "instance count",
    "ecs:service:DesiredCount": "count",
}


# NotScaledReasons codes the engine records [11].
NOT_SCALED_CODES = frozenset(
    {
        "AlreadyAtMaxCapacity",
        "AlreadyAtMinCapacity",
        "AlreadyAtDesiredCapacity",
        "TargetServicePutResourceAsUnscalable",
    }
)


class InvalidScalingInput(OpsError):
    """A scalable target, policy or input (metric, traffic) that makes no sense."""


@dataclass(frozen=True)
class ScalableTarget:
    """RegisterScalableTarget's resource and its capacity bounds."""

    resource_id: str  # endpoint/<endpoint>/variant/<variant>
    min_capacity: int
    max_capacity: int
    service_namespace: str = "sagemaker"
    scalable_dimension: str = "sagemaker:variant:DesiredInstanceCount"

    def __post_init__(self) -> None:
        if self.min_capacity < 0:
            raise InvalidScalingInput(f"min capacity must be >= 0, not {self.min_capacity}")
        if self.min_capacity > self.max_capacity:
            raise InvalidScalingInput(
                f"min capacity {self.min_capacity} exceeds max capacity {self.max_capacity}"
            )

    def clamp(self, capacity: int) -> int:
        return min(max(capacity, self.min_capacity), self.max_capacity)


@dataclass(frozen=True)
class MetricSpec:
    """The CloudWatch metric the policy tracks (what its alarms watch)."""

    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str

    @classmethod
    def invocations_per_instance(cls, resource_id: str) -> MetricSpec:
        """The predefined ``SageMakerVariantInvocationsPerInstance`` for a variant."""
        parts = resource_id.split("/")
        if len(parts) != 4 or parts[0] != "endpoint" or parts[2] != "variant":
            raise InvalidScalingInput(
                f"resource id {resource_id!r} is not endpoint/<endpoint>/variant/<variant>"
            )
        return cls(
            namespace="AWS/SageMaker",
            metric_name="InvocationsPerInstance",
            dimensions=(("EndpointName", parts[1]), ("VariantName", parts[3])),
            statistic="Sum",
        )


@dataclass(frozen=True)
class TargetTrackingPolicy:
    """PutScalingPolicy's TargetTrackingScalingPolicyConfiguration, with the policy's name."""

    policy_name: str
    target_value: float
    scale_in_cooldown: int = DEFAULT_COOLDOWN
    scale_out_cooldown: int = DEFAULT_COOLDOWN
    disable_scale_in: bool = False
    metric: MetricSpec | None = None  # None: SageMakerVariantInvocationsPerInstance

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_value) and self.target_value > 0):
            raise InvalidScalingInput(f"target value must be > 0, not {self.target_value}")
        for name in ("scale_in_cooldown", "scale_out_cooldown"):
            if getattr(self, name) < 0:
                raise InvalidScalingInput(
                    f"{name.replace('_', '-')} must be >= 0 seconds, not {getattr(self, name)}"
                )


class AlarmState(StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


@dataclass(frozen=True)
class Alarm:
    """One of the two CloudWatch alarms a target tracking policy owns."""

    name: str
    high: bool  # AlarmHigh (scale out) or AlarmLow (scale in)
    threshold: float
    datapoints: int  # evaluation periods, all of which must breach
    metric: MetricSpec

    @property
    def comparison_operator(self) -> str:
        return "GreaterThanThreshold" if self.high else "LessThanThreshold"

    def breaches(self, value: float) -> bool:
        return value > self.threshold if self.high else value < self.threshold

    def arn(self, region: str, account: str) -> str:
        return f"arn:aws:cloudwatch:{region}:{account}:alarm:{self.name}"

    def describe(self, region: str, account: str) -> dict[str, str]:
        """The entry in PutScalingPolicy's and DescribeScalingPolicies' ``Alarms``."""
        return {"AlarmName": self.name, "AlarmARN": self.arn(region, account)}

    def metric_alarm(self, policy_arn: str) -> dict:
        """PutMetricAlarm's parameters for this alarm, as AWS creates it (AWS-SEMANTICS A1)."""
        return {
            "AlarmName": self.name,
            "AlarmDescription": (
                f"DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {policy_arn}."
            ),
            "ActionsEnabled": True,
            "AlarmActions": [policy_arn],
            "Namespace": self.metric.namespace,
            "MetricName": self.metric.metric_name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.metric.dimensions],
            "Statistic": self.metric.statistic,
            "Period": PERIOD_SECONDS,
            "EvaluationPeriods": self.datapoints,
            "DatapointsToAlarm": self.datapoints,
            "Threshold": self.threshold,
            "ComparisonOperator": self.comparison_operator,
            "TreatMissingData": "missing",
        }


class StatusCode(StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"


@dataclass
class Activity:
    """A scaling activity (or a not-scaled one), as DescribeScalingActivities shows it.

    Times are policy seconds (see ops.scaling.clock); `describe` turns them into datetimes.
    """

    activity_id: str
    target: ScalableTarget
    description: str
    cause: str
    start_time: float
    status_code: StatusCode
    previous_capacity: int
    desired_capacity: int | None = None  # None: not scaled
    status_message: str | None = None
    end_time: float | None = None
    not_scaled_reasons: tuple[dict, ...] = ()

    @property
    def scale_out(self) -> bool:
        return self.desired_capacity is not None and self.desired_capacity > self.previous_capacity

    def describe(self) -> dict:
        """The ScalingActivity shape (botocore's application-autoscaling model)."""
        shape = {
            "ActivityId": self.activity_id,
            "ServiceNamespace": self.target.service_namespace,
            "ResourceId": self.target.resource_id,
            "ScalableDimension": self.target.scalable_dimension,
            "Description": self.description,
            "Cause": self.cause,
            "StartTime": datetime.fromtimestamp(self.start_time, UTC),
            "StatusCode": str(self.status_code),
        }
        if self.end_time is not None:
            shape["EndTime"] = datetime.fromtimestamp(self.end_time, UTC)
        if self.status_message is not None:
            shape["StatusMessage"] = self.status_message
        if self.not_scaled_reasons:
            shape["NotScaledReasons"] = [dict(r) for r in self.not_scaled_reasons]
        return shape


@dataclass(frozen=True)
class ScalingDecision:
    """Set the scalable dimension to `desired_capacity`, then report to the engine."""

    desired_capacity: int
    previous_capacity: int
    activity: Activity

    @property
    def scale_out(self) -> bool:
        return self.desired_capacity > self.previous_capacity


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation saw and did."""

    time: float
    high: AlarmState
    low: AlarmState | None  # None: scale-in disabled, no AlarmLow
    metric: float | None  # the latest datapoint in the alarms' window
    decision: ScalingDecision | None = None
    not_scaled: Activity | None = None  # a not-scaled activity recorded by this evaluation
    reason: str | None = None  # why an alarm in ALARM changed nothing


@dataclass
class _Cooldown:
    until: float
    added: int = 0  # instances the scale-out that started it added


class Engine:
    """One target tracking policy on one scalable target.

    ``current_capacity`` given to `evaluate` is the capacity serving the load the latest
    datapoint measured (SageMaker: the variant's CurrentInstanceCount, the ``n`` the metric
    divides by). `new_id` makes activity ids and alarm suffixes (uuid4 unless given).
    """

    def __init__(
        self,
        target: ScalableTarget,
        policy: TargetTrackingPolicy,
        *,
        new_id: Callable[[], str] | None = None,
        max_scale_in_step: int | None = 1,
    ) -> None:
        if max_scale_in_step is not None and max_scale_in_step < 1:
            raise InvalidScalingInput(f"max_scale_in_step must be >= 1, not {max_scale_in_step}")
        self.target = target
        self.policy = policy
        self.max_scale_in_step = max_scale_in_step
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        metric = policy.metric or MetricSpec.invocations_per_instance(target.resource_id)
        prefix = f"TargetTracking-{target.resource_id}"
        self.high_alarm = Alarm(
            f"{prefix}-AlarmHigh-{self._new_id()}",
            high=True,
            threshold=policy.target_value,
            datapoints=HIGH_DATAPOINTS,
            metric=metric,
        )
        self.low_alarm = (
            None
            if policy.disable_scale_in
            else Alarm(
                f"{prefix}-AlarmLow-{self._new_id()}",
                high=False,
                threshold=LOW_THRESHOLD_FRACTION * policy.target_value,
                datapoints=LOW_DATAPOINTS,
                metric=metric,
            )
        )
        self._datapoints: dict[int, float] = {}  # period index (end // 60) -> value
        self._activities: list[Activity] = []  # oldest first
        self._in_progress: Activity | None = None
        self._scale_out_cooldown: _Cooldown | None = None
        self._scale_in_cooldown: _Cooldown | None = None
        self._last_not_scaled: tuple[str, str] | None = None  # (alarm, code) of the current run

    @property
    def alarms(self) -> list[Alarm]:
        """The policy's alarms, AlarmHigh first (DescribeScalingPolicies' ``Alarms``)."""
        return [a for a in (self.high_alarm, self.low_alarm) if a is not None]

    @property
    def in_progress(self) -> Activity | None:
        return self._in_progress

    def activities(self, include_not_scaled: bool = False) -> list[Activity]:
        """Newest first, as DescribeScalingActivities lists them."""
        return [
            a for a in reversed(self._activities) if include_not_scaled or not a.not_scaled_reasons
        ]

    def observe(self, period_end: float, value: float) -> None:
        """Record the datapoint of the one-minute period ending at `period_end` (a multiple
        of 60 policy seconds). A second value for the same period replaces the first."""
        if not (math.isfinite(value) and value >= 0):
            raise InvalidScalingInput(f"a metric datapoint must be a number >= 0, not {value}")
        index = round(period_end / PERIOD_SECONDS)
        self._datapoints[index] = float(value)
        for old in [i for i in self._datapoints if i <= index - LOW_DATAPOINTS - 1]:
            del self._datapoints[old]

    def _window(self, now: float, periods: int) -> list[float | None]:
        last = math.floor(now / PERIOD_SECONDS + 1e-9)
        return [self._datapoints.get(i) for i in range(last - periods + 1, last + 1)]

    def alarm_state(self, alarm: Alarm, now: float) -> AlarmState:
        window = self._window(now, alarm.datapoints)
        present = [v for v in window if v is not None]
        if not present:
            return AlarmState.INSUFFICIENT_DATA
        if len(present) == alarm.datapoints and all(alarm.breaches(v) for v in present):
            return AlarmState.ALARM
        return AlarmState.OK

    def evaluate(self, now: float, current_capacity: int) -> Evaluation:
        """Run the policy once, as an alarm in ALARM would: at most one new activity."""
        high = self.alarm_state(self.high_alarm, now)
        low = self.alarm_state(self.low_alarm, now) if self.low_alarm else None
        latest = self._window(now, 1)[0]
        seen = Evaluation(time=now, high=high, low=low, metric=latest)
        if high is AlarmState.ALARM:
            fired = self.high_alarm
        elif low is AlarmState.ALARM and self.low_alarm is not None:
            fired = self.low_alarm
        else:
            self._last_not_scaled = None
            return seen
        assert latest is not None  # an alarm in ALARM has all its datapoints
        if self._in_progress is not None:
            return self._not_scaled(
                seen, fired, current_capacity, "TargetServicePutResourceAsUnscalable"
            )
        needed = math.ceil(current_capacity * latest / self.policy.target_value - 1e-9)
        desired = self.target.clamp(needed)
        if fired.high:
            if desired <= current_capacity:
                return self._not_scaled(seen, fired, current_capacity, "AlreadyAtMaxCapacity")
            cooldown = self._scale_out_cooldown
            if cooldown and now < cooldown.until and desired - current_capacity <= cooldown.added:
                return replace(
                    seen,
                    reason=f"scale-out cooldown: +{desired - current_capacity} is not larger "
                    f"than the +{cooldown.added} that started it",
                )
        else:
            if desired >= current_capacity:
                code = (
                    "AlreadyAtMinCapacity"
                    if current_capacity <= self.target.min_capacity
                    else "AlreadyAtDesiredCapacity"
                )
                return self._not_scaled(seen, fired, current_capacity, code)
            cooldown = self._scale_in_cooldown
            if cooldown and now < cooldown.until:
                return replace(seen, reason="scale-in cooldown")
            if self.max_scale_in_step is not None:
                desired = max(desired, current_capacity - self.max_scale_in_step)
        return self._start(seen, fired, current_capacity, desired)

    def complete(self, activity_id: str, now: float) -> Activity:
        """The target service fulfilled the change: the activity succeeds, its cooldown starts."""
        activity = self._take_in_progress(activity_id)
        activity.status_code = StatusCode.SUCCESSFUL
        activity.end_time = now
        noun = self._noun
        activity.status_message = (
            f"Successfully set desired {noun} to {activity.desired_capacity}. "
            f"Change successfully fulfilled by {self.target.service_namespace}."
        )
        assert activity.desired_capacity is not None
        if activity.scale_out:
            self._scale_out_cooldown = _Cooldown(
                until=now + self.policy.scale_out_cooldown,
                added=activity.desired_capacity - activity.previous_capacity,
            )
        else:
            self._scale_in_cooldown = _Cooldown(until=now + self.policy.scale_in_cooldown)
        return activity

    def fail(self, activity_id: str, now: float, reason: str) -> Activity:
        """The target service refused or could not make the change; no cooldown starts."""
        activity = self._take_in_progress(activity_id)
        activity.status_code = StatusCode.FAILED
        activity.end_time = now
        activity.status_message = (
            f"Failed to set desired {self._noun} to {activity.desired_capacity}. Reason: {reason}"
        )
        return activity

    @property
    def _noun(self) -> str:
        return _CAPACITY_NOUN.get(self.target.scalable_dimension, "capacity")

    def _cause(self, alarm: Alarm) -> str:
        return (
            f"monitor alarm {alarm.name} in state ALARM triggered policy {self.policy.policy_name}"
        )

    def _record(self, activity: Activity) -> None:
        horizon = activity.start_time - ACTIVITY_LOOKBACK
        self._activities = [a for a in self._activities if a.start_time >= horizon]
        self._activities.append(activity)

    def _start(self, seen: Evaluation, alarm: Alarm, current: int, desired: int) -> Evaluation:
        activity = Activity(
            activity_id=self._new_id(),
            target=self.target,
            description=f"Setting desired {self._noun} to {desired}.",
            cause=self._cause(alarm),
            start_time=seen.time,
            status_code=StatusCode.IN_PROGRESS,
            previous_capacity=current,
            desired_capacity=desired,
            status_message=f"Successfully set desired {self._noun} to {desired}. "
            f"Waiting for change to be fulfilled by {self.target.service_namespace}.",
        )
        if desired > current:
            self._scale_in_cooldown = None  # a scale-out stops the scale-in cooldown [8]
        self._record(activity)
        self._in_progress = activity
        self._last_not_scaled = None
        decision = ScalingDecision(desired, current, activity)
        return replace(seen, decision=decision)

    def _not_scaled(self, seen: Evaluation, alarm: Alarm, current: int, code: str) -> Evaluation:
        if self._last_not_scaled == (alarm.name, code):
            return replace(seen, reason=code)
        self._last_not_scaled = (alarm.name, code)
        reason: dict = {"Code": code}
        if code == "AlreadyAtMaxCapacity":
            reason["MaxCapacity"] = self.target.max_capacity
        elif code == "AlreadyAtMinCapacity":
            reason["MinCapacity"] = self.target.min_capacity
        else:
            reason["CurrentCapacity"] = current
        activity = Activity(
            activity_id=self._new_id(),
            target=self.target,
            description="Attempting to scale due to alarm triggered",
            cause=self._cause(alarm),
            start_time=seen.time,
            status_code=StatusCode.FAILED,
            previous_capacity=current,
            not_scaled_reasons=(reason,),
        )
        self._record(activity)
        return replace(seen, not_scaled=activity, reason=code)

    def _take_in_progress(self, activity_id: str) -> Activity:
        activity = self._in_progress
        if activity is None or activity.activity_id != activity_id:
            raise InvalidScalingInput(f"activity {activity_id} is not in progress")
        self._in_progress = None
        return activity
