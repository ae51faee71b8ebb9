"""The Application Auto Scaling operations the local cloud answers (JSON 1.1, ``X-Amz-Target:
AnyScaleFrontendService.<operation>``, signed for ``application-autoscaling``), for SageMaker
endpoint variants (ServiceNamespace ``sagemaker``, ScalableDimension
``sagemaker:variant:DesiredInstanceCount``, ResourceId ``endpoint/<name>/variant/<variant>``):

- RegisterScalableTarget (create or update; bounds that exclude the variant's instance count
  scale it at once, as AWS does: Cause ``minimum capacity was set to N``), DescribeScalableTargets,
  DeregisterScalableTarget (its policies and their alarms go with it);
- PutScalingPolicy (TargetTrackingScaling on ``SageMakerVariantInvocationsPerInstance``, or a
  customised ``AWS/SageMaker`` ``Invocations``/``InvocationsPerInstance`` Sum of the variant),
  DescribeScalingPolicies (with the policy's ``Alarms``), DeleteScalingPolicy;
- DescribeScalingActivities (newest first; ``IncludeNotScaledActivities``).

The policy's alarms are also created in (moto's) CloudWatch as AWS creates them, so
DescribeAlarms lists them; the engine, not CloudWatch, evaluates them. Step and predictive
scaling are refused with a ValidationException that says so. Requests are checked against
botocore's model before a handler runs; these are the checks it cannot express.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from ops.localcloud.autoscaling.backend import (
    DIMENSION,
    NAMESPACE,
    AutoscalingBackend,
    Invalid,
    Key,
    NotFound,
    Policy,
    UnknownResource,
)
from ops.localcloud.autoscaling.controller import Controller
from ops.localcloud.routes import Handler, api_method
from ops.localcloud.wire import ACCOUNT_ID, AwsError, page, validation_error
from ops.scaling.policy import (
    DEFAULT_COOLDOWN,
    Engine,
    InvalidScalingInput,
    MetricSpec,
    TargetTrackingPolicy,
)

log = logging.getLogger("dogops.localcloud")
PAGE_LIMIT = 50  # MaxResults of the Describe operations ("maximum value of 50")
PREDEFINED = "SageMakerVariantInvocationsPerInstance"
CUSTOM_METRICS = ("InvocationsPerInstance", "Invocations")
_RESOURCE_ID = re.compile(r"endpoint/([^/]+)/variant/([^/]+)")


def _aws_error(exc: Exception) -> AwsError | None:
    if isinstance(exc, NotFound):
        return AwsError("ObjectNotFoundException", str(exc))
    if isinstance(exc, UnknownResource):
        return AwsError(
            "ResourceNotFoundException",
            f"No scalable target found for ARN {exc}",
            members={"ResourceName": str(exc)},
        )
    if isinstance(exc, Invalid | InvalidScalingInput):
        return validation_error(str(exc))
    return None


_api = api_method(_aws_error)


def metric_of(policy: Policy) -> MetricSpec | None:
    """The customised metric a policy tracks (None: the predefined one)."""
    custom = policy.configuration.get("CustomizedMetricSpecification")
    if not custom:
        return None
    return MetricSpec(
        namespace=custom["Namespace"],
        metric_name=custom["MetricName"],
        dimensions=tuple((d["Name"], d["Value"]) for d in custom.get("Dimensions", [])),
        statistic=custom["Statistic"],
    )


def make_engine(policy: Policy, target) -> Engine:
    """The engine for a policy as declared, with the alarm names it was given."""
    config = policy.configuration
    engine = Engine(
        target.scalable(),
        TargetTrackingPolicy(
            policy.name,
            float(config["TargetValue"]),
            scale_in_cooldown=config.get("ScaleInCooldown", DEFAULT_COOLDOWN),
            scale_out_cooldown=config.get("ScaleOutCooldown", DEFAULT_COOLDOWN),
            disable_scale_in=bool(config.get("DisableScaleIn", False)),
            metric=metric_of(policy),
        ),
    )
    if policy.alarm_names:
        engine.high_alarm = _renamed(engine.high_alarm, policy.alarm_names[0])
        if engine.low_alarm is not None and len(policy.alarm_names) > 1:
            engine.low_alarm = _renamed(engine.low_alarm, policy.alarm_names[1])
    return engine


def _renamed(alarm, name: str):
    return replace(alarm, name=name)


class AutoscalingApi:
    def __init__(self, backend: AutoscalingBackend, controller: Controller, sagemaker, moto):
        self.backend = backend
        self.controller = controller
        self._sagemaker = sagemaker  # () -> SageMakerService
        self.moto = moto

    def handlers(self) -> dict[str, Handler]:
        return {
            "RegisterScalableTarget": self.register_scalable_target,
            "DescribeScalableTargets": self.describe_scalable_targets,
            "DeregisterScalableTarget": self.deregister_scalable_target,
            "PutScalingPolicy": self.put_scaling_policy,
            "DescribeScalingPolicies": self.describe_scaling_policies,
            "DeleteScalingPolicy": self.delete_scaling_policy,
            "DescribeScalingActivities": self.describe_scaling_activities,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
            # Not implemented, and not left to moto either (it knows none of our targets).
            "PutScheduledAction": self.put_scheduled_action,
            "DescribeScheduledActions": self.describe_scheduled_actions,
            "DeleteScheduledAction": self.delete_scheduled_action,
            "GetPredictiveScalingForecast": self.get_predictive_scaling_forecast,
        }

    # -- targets ---------------------------------------------------------------------------

    @_api
    def register_scalable_target(self, region: str, p: dict) -> dict:
        key = _key(region, p)
        endpoints = self._sagemaker().endpoints
        endpoint_name, variant = _endpoint_and_variant(key)
        try:
            endpoint = endpoints.endpoint(region, endpoint_name)
            with endpoints.lock:
                current = endpoint.variant(variant)["DesiredInstanceCount"]
        except Exception as exc:  # the endpoint or variant does not exist
            raise Invalid(f"Unable to register {key[2]}: {exc}") from exc
        for name in ("MinCapacity", "MaxCapacity"):
            if p.get(name) is not None and p[name] < 1:
                raise Invalid(
                    f"{name} must be at least 1 for a SageMaker endpoint variant (a real-time "
                    "variant does not scale to zero)"
                )
        target, _ = self.backend.register(
            key,
            p.get("MinCapacity"),
            p.get("MaxCapacity"),
            self.controller.clock.now(),
            role_arn=p.get("RoleARN"),
            suspended=p.get("SuspendedState"),
            tags=p.get("Tags"),
        )
        if current < target.min_capacity:
            self.controller.enforce_bounds(target, True, target.min_capacity, current)
        elif current > target.max_capacity:
            self.controller.enforce_bounds(target, False, target.max_capacity, current)
        return {"ScalableTargetARN": target.arn}

    @_api
    def describe_scalable_targets(self, region: str, p: dict) -> dict:
        targets = self.backend.list_targets(region, p["ServiceNamespace"])
        if p.get("ResourceIds"):
            targets = [t for t in targets if t.resource_id in p["ResourceIds"]]
        if p.get("ScalableDimension"):
            targets = [t for t in targets if t.dimension == p["ScalableDimension"]]
        chunk, more = page(targets, p, lambda t: t.arn, PAGE_LIMIT)
        return {"ScalableTargets": [_describe_target(t) for t in chunk], **more}

    @_api
    def deregister_scalable_target(self, region: str, p: dict) -> dict:
        removed = self.backend.deregister(_key(region, p))
        for policy in removed:
            self._delete_alarms(region, policy.alarm_names)
        return {}

    # -- policies --------------------------------------------------------------------------

    @_api
    def put_scaling_policy(self, region: str, p: dict) -> dict:
        key = _key(region, p)
        target = self.backend.target(key)
        existing = self.backend.policy(key, p["PolicyName"])
        policy_type = p.get("PolicyType") or ("TargetTrackingScaling" if existing else None)
        if policy_type is None:
            raise Invalid("PolicyType is required to create a scaling policy")
        if policy_type != "TargetTrackingScaling":
            raise Invalid(
                f"The local cloud's Application Auto Scaling implements TargetTrackingScaling "
                f"policies only; {policy_type} is not supported"
            )
        config = p.get("TargetTrackingScalingPolicyConfiguration")
        if not config:
            raise Invalid(
                "TargetTrackingScalingPolicyConfiguration is required for a "
                "TargetTrackingScaling policy"
            )
        _check_metric(config, key)
        policy = Policy(
            region,
            key[2],
            p["PolicyName"],
            configuration=config,
            arn=existing.arn if existing else _policy_arn(key, p["PolicyName"]),
            created=existing.created if existing else self.controller.clock.now(),
            alarm_names=[],
        )
        engine = make_engine(policy, target)  # checks the numbers (target value, cooldowns)
        policy.alarm_names = [alarm.name for alarm in engine.alarms]
        policy.engine = engine
        self.backend.put_policy(policy)
        if existing:
            self._delete_alarms(region, existing.alarm_names)
        self._put_alarms(region, policy)
        alarms = [alarm.describe(region, ACCOUNT_ID) for alarm in engine.alarms]
        return {"PolicyARN": policy.arn, "Alarms": alarms}

    @_api
    def describe_scaling_policies(self, region: str, p: dict) -> dict:
        policies = self.backend.list_policies(region, p["ServiceNamespace"])
        if p.get("PolicyNames"):
            policies = [x for x in policies if x.name in p["PolicyNames"]]
        if p.get("ResourceId"):
            policies = [x for x in policies if x.resource_id == p["ResourceId"]]
        if p.get("ScalableDimension"):
            policies = [x for x in policies if x.dimension == p["ScalableDimension"]]
        chunk, more = page(policies, p, lambda x: x.arn, PAGE_LIMIT)
        return {"ScalingPolicies": [_describe_policy(x) for x in chunk], **more}

    @_api
    def delete_scaling_policy(self, region: str, p: dict) -> dict:
        policy = self.backend.delete_policy(_key(region, p), p["PolicyName"])
        self._delete_alarms(region, policy.alarm_names)
        return {}

    # -- activities ------------------------------------------------------------------------

    @_api
    def describe_scaling_activities(self, region: str, p: dict) -> dict:
        found = self.backend.list_activities(region, p["ServiceNamespace"])
        if p.get("ResourceId"):
            found = [(k, a) for k, a in found if k[2] == p["ResourceId"]]
        if p.get("ScalableDimension"):
            found = [(k, a) for k, a in found if k[3] == p["ScalableDimension"]]
        if not p.get("IncludeNotScaledActivities"):
            found = [(k, a) for k, a in found if not a.not_scaled_reasons]
        chunk, more = page(found, p, lambda item: item[1].activity_id, PAGE_LIMIT)
        with self.backend.lock:  # the controller changes activities under this lock
            described = [activity.describe() for _, activity in chunk]
        return {"ScalingActivities": described, **more}

    # -- tags (of scalable targets) ----------------------------------------------------------

    @_api
    def tag_resource(self, region: str, p: dict) -> dict:
        self.backend.tag(p["ResourceARN"], tags=p["Tags"])
        return {}

    @_api
    def untag_resource(self, region: str, p: dict) -> dict:
        self.backend.tag(p["ResourceARN"], untag=p["TagKeys"])
        return {}

    @_api
    def list_tags_for_resource(self, region: str, p: dict) -> dict:
        return {"Tags": dict(self.backend.target_by_arn(p["ResourceARN"]).tags)}

    # -- what the local cloud does not run -----------------------------------------------------

    @_api
    def put_scheduled_action(self, region: str, p: dict) -> dict:
        raise Invalid(
            "The local cloud's Application Auto Scaling does not run scheduled actions; "
            "scale with a TargetTrackingScaling policy, or RegisterScalableTarget's bounds"
        )

    @_api
    def describe_scheduled_actions(self, region: str, p: dict) -> dict:
        return {"ScheduledActions": []}

    @_api
    def delete_scheduled_action(self, region: str, p: dict) -> dict:
        raise NotFound(
            f"No scheduled action found for service namespace: {p['ServiceNamespace']}, "
            f"resource ID: {p['ResourceId']}, scalable dimension: {p['ScalableDimension']}, "
            f"scheduled action name: {p['ScheduledActionName']}"
        )

    @_api
    def get_predictive_scaling_forecast(self, region: str, p: dict) -> dict:
        raise Invalid(
            "The local cloud's Application Auto Scaling implements TargetTrackingScaling "
            "policies only; there is no predictive scaling forecast"
        )

    # -- the policy's alarms in CloudWatch -------------------------------------------------------

    def _put_alarms(self, region: str, policy: Policy) -> None:
        cloudwatch = self.moto.client("cloudwatch", region)
        for alarm in policy.engine.alarms:
            cloudwatch.put_metric_alarm(**alarm.metric_alarm(policy.arn))

    def _delete_alarms(self, region: str, names: list[str]) -> None:
        if names:
            self.moto.client("cloudwatch", region).delete_alarms(AlarmNames=names)

    def put_restored_alarms(self) -> None:
        """Recreate the alarms of restored policies (moto's CloudWatch is not saved)."""
        for policy in self.backend.all_policies():
            try:
                self._put_alarms(policy.region, policy)
            except Exception:  # the policy still scales; only DescribeAlarms misses them
                log.exception("could not recreate the alarms of policy %s", policy.name)


def _key(region: str, p: dict) -> Key:
    """The target's key, for the only namespace and dimension the local cloud scales."""
    namespace, resource_id = p["ServiceNamespace"], p["ResourceId"]
    dimension = p["ScalableDimension"]
    if namespace != NAMESPACE:
        raise Invalid(
            f"The local cloud's Application Auto Scaling scales SageMaker endpoint variants only "
            f"(ServiceNamespace {NAMESPACE}), not {namespace}"
        )
    if dimension != DIMENSION:
        raise Invalid(
            f"Unsupported scalable dimension {dimension} for service namespace {namespace}: the "
            f"local cloud scales {DIMENSION}"
        )
    if not _RESOURCE_ID.fullmatch(resource_id):
        raise Invalid(
            f"Unsupported resource ID {resource_id}: a SageMaker endpoint variant's is "
            "endpoint/<endpoint name>/variant/<variant name>"
        )
    return (region, namespace, resource_id, dimension)


def _endpoint_and_variant(key: Key) -> tuple[str, str]:
    match = _RESOURCE_ID.fullmatch(key[2])
    return match.group(1), match.group(2)


def _check_metric(config: dict, key: Key) -> None:
    predefined = config.get("PredefinedMetricSpecification")
    custom = config.get("CustomizedMetricSpecification")
    if bool(predefined) == bool(custom):
        raise Invalid(
            "Exactly one of PredefinedMetricSpecification and CustomizedMetricSpecification "
            "must be given"
        )
    if predefined:
        if predefined["PredefinedMetricType"] != PREDEFINED:
            raise Invalid(
                f"Unsupported predefined metric type {predefined['PredefinedMetricType']} for "
                f"{DIMENSION}: the local cloud tracks {PREDEFINED}"
            )
        return
    endpoint, variant = _endpoint_and_variant(key)
    wanted = {"EndpointName": endpoint, "VariantName": variant}
    dimensions = {d["Name"]: d["Value"] for d in custom.get("Dimensions", [])}
    if (
        custom.get("Metrics")
        or custom.get("Namespace") != "AWS/SageMaker"
        or custom.get("MetricName") not in CUSTOM_METRICS
        or custom.get("Statistic") != "Sum"
        or dimensions != wanted
    ):
        raise Invalid(
            "The local cloud tracks a customised metric that is the Sum of AWS/SageMaker "
            f"{' or '.join(CUSTOM_METRICS)} with dimensions EndpointName={endpoint} and "
            f"VariantName={variant} (no metric math)"
        )


def _policy_arn(key: Key, name: str) -> str:
    region, namespace, resource_id, _ = key
    return (
        f"arn:aws:autoscaling:{region}:{ACCOUNT_ID}:scalingPolicy:{uuid.uuid4()}:"
        f"resource/{namespace}/{resource_id}:policyName/{name}"
    )


def _describe_target(target) -> dict:
    return {
        "ServiceNamespace": target.namespace,
        "ResourceId": target.resource_id,
        "ScalableDimension": target.dimension,
        "MinCapacity": target.min_capacity,
        "MaxCapacity": target.max_capacity,
        "RoleARN": target.role_arn,
        "CreationTime": datetime.fromtimestamp(target.created, UTC),
        "SuspendedState": {
            "DynamicScalingInSuspended": bool(target.suspended.get("DynamicScalingInSuspended")),
            "DynamicScalingOutSuspended": bool(target.suspended.get("DynamicScalingOutSuspended")),
            "ScheduledScalingSuspended": bool(target.suspended.get("ScheduledScalingSuspended")),
        },
        "ScalableTargetARN": target.arn,
    }


def _describe_policy(policy: Policy) -> dict:
    alarms = (
        [alarm.describe(policy.region, ACCOUNT_ID) for alarm in policy.engine.alarms]
        if policy.engine
        else []
    )
    return {
        "PolicyARN": policy.arn,
        "PolicyName": policy.name,
        "ServiceNamespace": policy.namespace,
        "ResourceId": policy.resource_id,
        "ScalableDimension": policy.dimension,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": policy.configuration,
        "Alarms": alarms,
        "CreationTime": datetime.fromtimestamp(policy.created, UTC),
    }
