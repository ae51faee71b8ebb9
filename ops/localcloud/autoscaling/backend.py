"""Application Auto Scaling's records: scalable targets, scaling policies (each with its
target-tracking `Engine`) and scaling activities; the backend that owns them, under one lock.

Kept on disk (`$DOGOPS_HOME/autoscaling/state.json`, rewritten whole through a rename at each
change) when the local cloud persists: targets, policies as declared (with their ARNs and alarm
names) and the activities of the last six weeks. A policy's engine starts afresh at a restart:
its alarms need new datapoints, as a CloudWatch alarm whose data stopped would. An activity
still InProgress when the local cloud stopped is Failed at the next start, saying so.

Times are policy seconds from the controller's clock (`ops.scaling.clock.RealClock`): with
``time_scale`` 1 they are Unix time; compressed, they run ahead of the wall clock.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ops.jsonfile import write_atomic
from ops.localcloud.wire import ACCOUNT_ID
from ops.scaling.policy import (
    ACTIVITY_LOOKBACK,
    Activity,
    Engine,
    ScalableTarget,
    StatusCode,
)

log = logging.getLogger("dogops.localcloud")
NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# The service-linked role Application Auto Scaling uses for SageMaker when RoleARN is not given.
SERVICE_LINKED_ROLE = (
    f"arn:aws:iam::{ACCOUNT_ID}:role/aws-service-role/"
    "sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
STOPPED_WHILE_SCALING = "The local cloud stopped while the scaling activity was in progress."

Key = tuple[str, str, str, str]  # region, namespace, resource id, dimension


class NotFound(Exception):
    """No such scalable target or policy (ObjectNotFoundException, in AWS's words)."""


class Invalid(Exception):
    """A request AWS refuses (ValidationException, in AWS's or our words)."""


class UnknownResource(Exception):
    """No scalable target has this ARN (ResourceNotFoundException, for the tag operations)."""


@dataclass
class Target:
    """A registered scalable target (RegisterScalableTarget)."""

    region: str
    resource_id: str
    min_capacity: int
    max_capacity: int
    created: float  # policy seconds
    arn: str
    role_arn: str = SERVICE_LINKED_ROLE
    suspended: dict = field(default_factory=dict)  # SuspendedState
    tags: dict = field(default_factory=dict)
    namespace: str = NAMESPACE
    dimension: str = DIMENSION

    @property
    def key(self) -> Key:
        return (self.region, self.namespace, self.resource_id, self.dimension)

    @property
    def endpoint(self) -> str:
        return self.resource_id.split("/")[1]

    @property
    def variant(self) -> str:
        return self.resource_id.split("/")[3]

    def scalable(self) -> ScalableTarget:
        return ScalableTarget(
            self.resource_id, self.min_capacity, self.max_capacity, self.namespace, self.dimension
        )


@dataclass
class Policy:
    """A target tracking policy (PutScalingPolicy) as declared, and its engine (not saved)."""

    region: str
    resource_id: str
    name: str
    configuration: dict  # TargetTrackingScalingPolicyConfiguration, as declared
    arn: str
    created: float
    alarm_names: list[str]  # [AlarmHigh, AlarmLow?], kept across restarts
    namespace: str = NAMESPACE
    dimension: str = DIMENSION
    engine: Engine | None = field(default=None, compare=False, repr=False)
    next_period_end: float | None = None  # run time: the period the controller reads next

    @property
    def key(self) -> Key:
        return (self.region, self.namespace, self.resource_id, self.dimension)


def activity_to_dict(activity: Activity) -> dict:
    target = activity.target
    return {
        "activity_id": activity.activity_id,
        "target": [
            target.resource_id,
            target.min_capacity,
            target.max_capacity,
            target.service_namespace,
            target.scalable_dimension,
        ],
        "description": activity.description,
        "cause": activity.cause,
        "start_time": activity.start_time,
        "status_code": str(activity.status_code),
        "previous_capacity": activity.previous_capacity,
        "desired_capacity": activity.desired_capacity,
        "status_message": activity.status_message,
        "end_time": activity.end_time,
        "not_scaled_reasons": list(activity.not_scaled_reasons),
    }


def activity_from_dict(saved: dict) -> Activity:
    return Activity(
        **{
            **saved,
            "target": ScalableTarget(*saved["target"]),
            "status_code": StatusCode(saved["status_code"]),
            "not_scaled_reasons": tuple(saved["not_scaled_reasons"]),
        }
    )


class AutoscalingBackend:
    """Targets, policies and activities keyed by (region, namespace, resource id, dimension).
    ``path``: where they are saved (None: kept in memory only)."""

    def __init__(self, path: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.path = path
        self.targets: dict[Key, Target] = {}
        self.policies: dict[tuple[Key, str], Policy] = {}
        self.activities: dict[Key, list[Activity]] = {}  # oldest first; kept after deregister

    # -- targets ---------------------------------------------------------------------------

    def target(self, key: Key) -> Target:
        with self.lock:
            if key not in self.targets:
                _, namespace, resource_id, dimension = key
                raise NotFound(
                    f"No scalable target registered for service namespace: {namespace}, "
                    f"resource ID: {resource_id}, scalable dimension: {dimension}"
                )
            return self.targets[key]

    def register(
        self, key: Key, min_capacity: int | None, max_capacity: int | None, now: float, **extra
    ) -> tuple[Target, bool]:
        """Create or update a target; (target, created)."""
        region, namespace, resource_id, dimension = key
        with self.lock:
            existing = self.targets.get(key)
            if existing is None:
                if min_capacity is None or max_capacity is None:
                    raise Invalid(
                        "MinCapacity and MaxCapacity are required to register a new scalable target"
                    )
                target = Target(
                    region,
                    resource_id,
                    min_capacity,
                    max_capacity,
                    created=now,
                    arn=(
                        f"arn:aws:application-autoscaling:{region}:{ACCOUNT_ID}:"
                        f"scalable-target/{uuid.uuid4().hex}{uuid.uuid4().hex[:4]}"
                    ),
                    namespace=namespace,
                    dimension=dimension,
                )
            else:
                target = replace(existing)
                if min_capacity is not None:
                    target.min_capacity = min_capacity
                if max_capacity is not None:
                    target.max_capacity = max_capacity
            if target.min_capacity > target.max_capacity:
                raise Invalid(
                    f"Minimum capacity ({target.min_capacity}) cannot be greater than maximum "
                    f"capacity ({target.max_capacity})"
                )
            if extra.get("role_arn"):
                target.role_arn = extra["role_arn"]
            if extra.get("suspended") is not None:
                target.suspended = {**target.suspended, **extra["suspended"]}
            if extra.get("tags"):
                target.tags = {**target.tags, **extra["tags"]}
            self.targets[key] = target
            for policy in self.policies_of(key):
                if policy.engine is not None:
                    policy.engine.target = target.scalable()
            self.save()
            return target, existing is None

    def deregister(self, key: Key) -> list[Policy]:
        """Remove the target and its policies (returned, for their alarms)."""
        with self.lock:
            if key not in self.targets:
                _, namespace, resource_id, dimension = key
                raise NotFound(
                    f"No scalable target found for service namespace: {namespace}, "
                    f"resource ID: {resource_id}, scalable dimension: {dimension}"
                )
            del self.targets[key]
            removed = self.policies_of(key)
            for policy in removed:
                del self.policies[(key, policy.name)]
            self.save()
            return removed

    def target_by_arn(self, arn: str) -> Target:
        with self.lock:
            for target in self.targets.values():
                if target.arn == arn:
                    return target
        raise UnknownResource(arn)

    def tag(self, arn: str, tags: dict | None = None, untag: list[str] = ()) -> Target:
        with self.lock:
            target = self.target_by_arn(arn)
            target.tags = {
                k: v for k, v in {**target.tags, **(tags or {})}.items() if k not in untag
            }
            self.save()
            return target

    def list_targets(self, region: str, namespace: str) -> list[Target]:
        with self.lock:
            return sorted(
                (
                    t
                    for t in self.targets.values()
                    if t.region == region and t.namespace == namespace
                ),
                key=lambda t: t.created,
            )

    # -- policies --------------------------------------------------------------------------

    def policies_of(self, key: Key) -> list[Policy]:
        with self.lock:
            return [p for (k, _), p in self.policies.items() if k == key]

    def put_policy(self, policy: Policy) -> Policy:
        with self.lock:
            self.target(policy.key)
            self.policies[(policy.key, policy.name)] = policy
            self.save()
            return policy

    def policy(self, key: Key, name: str) -> Policy | None:
        with self.lock:
            return self.policies.get((key, name))

    def delete_policy(self, key: Key, name: str) -> Policy:
        with self.lock:
            policy = self.policies.pop((key, name), None)
            if policy is None:
                _, namespace, resource_id, dimension = key
                raise NotFound(
                    f"No scaling policy found for service namespace: {namespace}, resource ID: "
                    f"{resource_id}, scalable dimension: {dimension}, policy name: {name}"
                )
            self.save()
            return policy

    def list_policies(self, region: str, namespace: str) -> list[Policy]:
        with self.lock:
            return sorted(
                (
                    p
                    for p in self.policies.values()
                    if p.region == region and p.namespace == namespace
                ),
                key=lambda p: p.created,
            )

    def all_policies(self) -> list[Policy]:
        with self.lock:
            return list(self.policies.values())

    # -- activities ------------------------------------------------------------------------

    def record(self, key: Key, activity: Activity) -> None:
        with self.lock:
            horizon = activity.start_time - ACTIVITY_LOOKBACK
            kept = [a for a in self.activities.get(key, []) if a.start_time >= horizon]
            self.activities[key] = [*kept, activity]
            self.save()

    def list_activities(self, region: str, namespace: str) -> list[tuple[Key, Activity]]:
        """Newest first, as DescribeScalingActivities lists them."""
        with self.lock:
            found = [
                (key, activity)
                for key, activities in self.activities.items()
                if key[0] == region and key[1] == namespace
                for activity in activities
            ]
        return sorted(found, key=lambda item: item[1].start_time, reverse=True)

    # -- disk ------------------------------------------------------------------------------

    def save(self) -> None:
        """Write everything (called under the lock after each change)."""
        if self.path is None:
            return
        with self.lock:
            document = {
                "targets": [{k: v for k, v in vars(t).items()} for t in self.targets.values()],
                "policies": [
                    {k: v for k, v in vars(p).items() if k not in ("engine", "next_period_end")}
                    for p in self.policies.values()
                ],
                "activities": [
                    {"key": list(key), "activity": activity_to_dict(a)}
                    for key, activities in self.activities.items()
                    for a in activities
                ],
            }
            try:
                write_atomic(self.path, document)
            except OSError:  # scaling goes on; the file on disk is older than it
                log.exception("could not save the autoscaling records to %s", self.path)

    def restore(self, now: float, make_engine: Callable[[Policy], Engine]) -> None:
        """Read the saved records (a file that cannot be read is reported and moved aside)."""
        if self.path is None or not self.path.exists():
            return
        try:
            document = json.loads(self.path.read_text())
            targets = [Target(**saved) for saved in document["targets"]]
            policies = [Policy(**saved) for saved in document["policies"]]
            activities = [
                (tuple(item["key"]), activity_from_dict(item["activity"]))
                for item in document["activities"]
            ]
        except Exception as exc:
            aside = self.path.with_name(f"{self.path.name}.unrestored-{int(now)}")
            self.path.replace(aside)
            log.error(
                "cannot read the autoscaling records %s (%s: %s); moved to %s",
                self.path,
                type(exc).__name__,
                exc,
                aside,
            )
            return
        with self.lock:
            for target in targets:
                self.targets[target.key] = target
            for policy in policies:
                policy.engine = make_engine(policy)
                self.policies[(policy.key, policy.name)] = policy
            for key, activity in activities:
                if activity.status_code is StatusCode.IN_PROGRESS:
                    activity.status_code = StatusCode.FAILED
                    activity.end_time = now
                    activity.status_message = STOPPED_WHILE_SCALING
                self.activities.setdefault(key, []).append(activity)
            self.save()
        log.info(
            "restored %d scalable targets and %d scaling policies", len(targets), len(policies)
        )
