"""`ops promote-endpoint`: a trained model onto the endpoint, without breaking its autoscaling.

A promotion creates a model and an endpoint config under new timestamped names, then creates the
endpoint (first time) or updates it, by the stable name in terraform.tfvars, and waits until it
is InService on the new config. A smoke invocation (a small JPEG made in memory) must then get a
parseable answer. If anything fails the endpoint goes back to the config it had, and the new
config and model are deleted; if all is well, configs and models the endpoint no longer uses are
deleted, except the previous ones, which `ops promote-endpoint --rollback` returns to.

The traps on an autoscaled endpoint (sources in ../shared/AWS-SEMANTICS.md, A5 and B3):

- A plain UpdateEndpoint resets the variant's instance count to the new config's
  InitialInstanceCount: we pass ``RetainAllVariantProperties=True`` (DesiredInstanceCount and
  DesiredWeight stay as autoscaling set them; nothing is excluded) when the variant's instance
  type is unchanged.
- An UpdateEndpoint that changes the instance type of, or removes, a variant with a registered
  scalable target fails. Then we describe the target and its policies, deregister it, update
  without retaining (the new config carries the current instance count), and register the target
  and put the policies back with the same numbers, also when the update fails.
- A failed UpdateEndpoint leaves the endpoint InService on its old config with FailureReason set,
  so "InService" alone does not mean the update took: we check the config it serves.

On AWS, Terraform registers the scalable target once the endpoint exists (after the first
promotion). A promotion registers the target and its policy only when DescribeScalableTargets
finds none (the first promotion, the local cloud), with the numbers and the policy name Terraform
uses, so a later `terraform apply` updates the same target and policy rather than adding one.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ops.config import EndpointSettings
from ops.errors import OpsError
from ops.job_requests import DLC_ACCOUNT, GPU_FAMILIES
from ops.target import Target

Progress = Callable[[str, dict], None]

# The SageMaker Python SDK's newest PyTorch inference image (image_uri_config/pytorch.json).
INFERENCE_TAG_CPU = "2.6.0-cpu-py312"
INFERENCE_TAG_GPU = "2.6.0-gpu-py312"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# Statuses an endpoint passes through; it accepts no UpdateEndpoint in them.
TRANSITIONAL = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}
STAMP = r"\d{6}-\d{6}-[0-9a-f]{4}"


@dataclass
class PromotePlan:
    model_data: str = ""  # s3://.../model.tar.gz (unused by a rollback)
    instance_type: str | None = None  # None: the endpoint's current type, else the default
    image_uri: str | None = None  # None: the AWS PyTorch inference image for the region
    timeout_s: float = 1800.0  # per wait for InService
    poll_s: float = 2.0


@dataclass
class PromotionResult:
    target: str
    endpoint: str
    action: str  # created | updated | rolled-back
    endpoint_config: str = ""  # the config the endpoint serves at the end
    model: str = ""
    model_data: str = ""
    instance_type: str = ""
    instance_count: int = 0
    previous_config: str | None = None
    retained_variant_properties: bool = False
    autoscaling: dict = field(default_factory=dict)
    smoke: dict | None = None
    rollback: dict | None = None  # set when a failure sent the endpoint back
    deleted: dict = field(default_factory=lambda: {"endpoint_configs": [], "models": []})
    timings: dict = field(default_factory=dict)  # seconds per step, and total
    failure: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


class PromotionFailed(OpsError):
    """The promotion failed; ``result`` says where the endpoint stands (rollback included)."""

    def __init__(self, message: str, result: PromotionResult):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class UpdateDecision:
    """How to update an endpoint from its current config's variants to a new variant."""

    retain: bool  # RetainAllVariantProperties
    disrupted: tuple[str, ...]  # variants whose scalable target must be deregistered first
    reason: str


def decide_update(current_variants: list[dict], new_variant: dict) -> UpdateDecision:
    """Same-named variant on the same instance type: retain its instance count and weight.
    Otherwise the update changes or removes variants (their targets must go first) and the new
    config's InitialInstanceCount applies."""
    disrupted = tuple(
        v["VariantName"]
        for v in current_variants
        if v["VariantName"] != new_variant["VariantName"]
        or v.get("InstanceType") != new_variant["InstanceType"]
    )
    same = next(
        (v for v in current_variants if v["VariantName"] == new_variant["VariantName"]), None
    )
    if same is not None and same.get("InstanceType") == new_variant["InstanceType"]:
        return UpdateDecision(True, disrupted, "instance type unchanged: retain the count")
    if same is None:
        reason = f"variant {new_variant['VariantName']} is new on this endpoint"
    else:
        reason = f"instance type {same.get('InstanceType')} -> {new_variant['InstanceType']}"
    return UpdateDecision(False, disrupted, reason)


def recorded_model_data(folder: Path, target_name: str) -> str:
    """The model artifact `ops train --target <name>` recorded in ``<folder>/<name>.json``."""
    path = folder / f"{target_name}.json"
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        raise OpsError(
            f"no trained model recorded for --target {target_name} ({path} is missing): run "
            f"`ops train --target {target_name}` first, or pass --model-data s3://.../model.tar.gz"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise OpsError(f"cannot read {path}: {exc}; pass --model-data instead") from exc
    artifact = recorded.get("model_artifact") if isinstance(recorded, dict) else None
    if not artifact:
        raise OpsError(f"{path} names no model_artifact; pass --model-data instead")
    return str(artifact)


def inference_image(region: str, instance_type: str) -> str:
    tag = INFERENCE_TAG_GPU if instance_type.startswith(GPU_FAMILIES) else INFERENCE_TAG_CPU
    return f"{DLC_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/pytorch-inference:{tag}"


def smoke_image() -> bytes:
    """A small JPEG, made in memory: what the smoke invocation sends."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (96, 96), (190, 150, 110))
    ImageDraw.Draw(image).ellipse((20, 16, 76, 80), fill=(90, 60, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _stamp() -> str:
    """UTC time to the second and 4 hex digits: sortable, unique, and short enough that
    ``<endpoint>-<stamp>`` stays within the 63 characters a config or model name may have."""
    return datetime.now(UTC).strftime("%y%m%d-%H%M%S-") + secrets.token_hex(2)


class _Promoter:
    """One promotion's clients, settings and clock."""

    def __init__(
        self,
        target: Target,
        settings: EndpointSettings,
        plan: PromotePlan,
        progress: Progress,
    ):
        self.target = target
        self.settings = settings
        self.plan = plan
        self.progress = progress
        self.sm = target.client("sagemaker")
        self.aas = target.client("application-autoscaling")
        self.runtime = target.client("sagemaker-runtime")
        self.name = settings.endpoint_name
        self.ours = re.compile(rf"^{re.escape(self.name)}-{STAMP}$")

    # ---- reading --------------------------------------------------------------------------

    def describe_endpoint(self) -> dict | None:
        try:
            return self.sm.describe_endpoint(EndpointName=self.name)
        except ClientError as exc:
            if "Could not find endpoint" in str(exc):
                return None
            raise

    def variants(self, config_name: str) -> list[dict]:
        return self.sm.describe_endpoint_config(EndpointConfigName=config_name)[
            "ProductionVariants"
        ]

    def resource_id(self, variant: str) -> str:
        return f"endpoint/{self.name}/variant/{variant}"

    def scalable_target(self, variant: str) -> dict | None:
        found = self.aas.describe_scalable_targets(
            ServiceNamespace=NAMESPACE,
            ResourceIds=[self.resource_id(variant)],
            ScalableDimension=DIMENSION,
        )["ScalableTargets"]
        return found[0] if found else None

    def policies(self, variant: str) -> list[dict]:
        pages = self.aas.get_paginator("describe_scaling_policies").paginate(
            ServiceNamespace=NAMESPACE,
            ResourceId=self.resource_id(variant),
            ScalableDimension=DIMENSION,
        )
        return [p for page in pages for p in page["ScalingPolicies"]]

    # ---- waiting --------------------------------------------------------------------------

    def wait(self, config_name: str, before: dict | None = None) -> dict:
        """Poll DescribeEndpoint until the endpoint leaves the transitional statuses and, after
        an update from ``before``, serves ``config_name`` or shows that the update ended (it went
        through a transitional status, was modified, or reports a new FailureReason: a failed
        update leaves the endpoint InService on its old config). OpsError on timeout."""
        before = before or {}
        started = time.monotonic()
        seen_transition = False
        while True:
            described = self.sm.describe_endpoint(EndpointName=self.name)
            status = described["EndpointStatus"]
            elapsed = time.monotonic() - started
            self.progress("waiting", {"status": status, "seconds": round(elapsed, 1)})
            seen_transition = seen_transition or status in TRANSITIONAL
            reason = described.get("FailureReason")
            settled = status not in TRANSITIONAL and (
                described.get("EndpointConfigName") == config_name
                or seen_transition
                or described.get("LastModifiedTime") != before.get("LastModifiedTime")
                or (reason and reason != before.get("FailureReason"))
            )
            if settled:
                return described
            if elapsed > self.plan.timeout_s:
                raise OpsError(
                    f"endpoint {self.name} still {status} after {self.plan.timeout_s:.0f} s; "
                    "it finishes (or rolls back) on its own: check `aws sagemaker "
                    f"describe-endpoint --endpoint-name {self.name}`"
                )
            time.sleep(self.plan.poll_s)

    # ---- acting ---------------------------------------------------------------------------

    def create_model_and_config(
        self, model_data: str, instance_type: str, count: int
    ) -> tuple[str, dict]:
        name = f"{self.name}-{_stamp()}"
        role = str(
            self.target.outputs.get("sagemaker_endpoint_role_arn") or self.target.sagemaker_role_arn
        )
        self.sm.create_model(
            ModelName=name,
            ExecutionRoleArn=role,
            PrimaryContainer={
                "Image": self.plan.image_uri or inference_image(self.target.region, instance_type),
                "ModelDataUrl": model_data,
                # What the SageMaker SDK sets for a PyTorch model whose artifact carries
                # code/inference.py (as ml/train.py writes it).
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    "SAGEMAKER_REGION": self.target.region,
                },
            },
        )
        self.progress("model", {"name": name, "model_data": model_data})
        variant = {
            "VariantName": self.settings.variant_name,
            "ModelName": name,
            "InitialInstanceCount": count,
            "InstanceType": instance_type,
            "InitialVariantWeight": 1.0,
        }
        try:
            self.sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
        except (ClientError, BotoCoreError):
            self.delete_unused([], [name])
            raise
        self.progress("config", {"name": name, "instance_type": instance_type, "count": count})
        return name, variant

    def update(self, config_name: str, current_config: str, result: PromotionResult) -> dict:
        """UpdateEndpoint to ``config_name`` as decide_update says, scalable targets of changed
        variants deregistered before and registered again after (whatever the outcome)."""
        new_variant = next(
            v for v in self.variants(config_name) if v["VariantName"] == self.settings.variant_name
        )
        decision = decide_update(self.variants(current_config), new_variant)
        result.retained_variant_properties = decision.retain
        saved = []
        for variant in decision.disrupted:
            registered = self.scalable_target(variant)
            if registered is None:
                continue
            saved.append((variant, registered, self.policies(variant)))
            self.aas.deregister_scalable_target(
                ServiceNamespace=NAMESPACE,
                ResourceId=self.resource_id(variant),
                ScalableDimension=DIMENSION,
            )
            self.progress("deregistered", {"resource_id": self.resource_id(variant)})
        self.progress(
            "update", {"config": config_name, "retain": decision.retain, "why": decision.reason}
        )
        try:
            before = self.sm.describe_endpoint(EndpointName=self.name)
            self.sm.update_endpoint(
                EndpointName=self.name,
                EndpointConfigName=config_name,
                RetainAllVariantProperties=decision.retain,
            )
            return self.wait(config_name, before)
        finally:
            restored = self.restore_targets(saved)
            if restored:
                result.autoscaling["re_registered"] = restored

    def restore_targets(self, saved: list[tuple[str, dict, list[dict]]]) -> list[str]:
        """Register saved targets again, with their policies, for variants the endpoint still
        has (the update's or, after a failure, the old config's)."""
        if not saved:
            return []
        serving = self.describe_endpoint() or {}
        present = {v["VariantName"] for v in serving.get("ProductionVariants", [])}
        restored = []
        for variant, registered, policies in saved:
            if variant not in present:
                continue
            resource_id = self.resource_id(variant)
            try:
                extra = {k: registered[k] for k in ("SuspendedState",) if k in registered}
                self.aas.register_scalable_target(
                    ServiceNamespace=NAMESPACE,
                    ResourceId=resource_id,
                    ScalableDimension=DIMENSION,
                    MinCapacity=registered["MinCapacity"],
                    MaxCapacity=registered["MaxCapacity"],
                    **extra,
                )
                for policy in policies:
                    self.aas.put_scaling_policy(**_policy_request(policy))
            except (ClientError, BotoCoreError) as exc:
                numbers = {
                    "MinCapacity": registered["MinCapacity"],
                    "MaxCapacity": registered["MaxCapacity"],
                    "policies": [_policy_request(p) for p in policies],
                }
                raise OpsError(
                    f"could not register the scalable target {resource_id} again ({exc}); "
                    f"register it by hand or run `terraform apply`: {json.dumps(numbers)}"
                ) from exc
            restored.append(resource_id)
            self.progress("re-registered", {"resource_id": resource_id})
        return restored

    def ensure_autoscaling(self) -> dict:
        """Register the variant's scalable target and policy from the tfvars when absent."""
        s = self.settings
        if not s.autoscaling:
            return {"status": "disabled in tfvars (enable_endpoint_autoscaling = false)"}
        registered = self.scalable_target(s.variant_name)
        info: dict = {"resource_id": s.resource_id}
        if registered is None:
            self.aas.register_scalable_target(
                ServiceNamespace=NAMESPACE,
                ResourceId=s.resource_id,
                ScalableDimension=DIMENSION,
                MinCapacity=s.min_capacity,
                MaxCapacity=s.max_capacity,
            )
            info["status"] = "registered"
            info.update(min_capacity=s.min_capacity, max_capacity=s.max_capacity)
        else:
            info["status"] = "present"
            info.update(
                min_capacity=registered["MinCapacity"], max_capacity=registered["MaxCapacity"]
            )
        policies = self.policies(s.variant_name)
        if not policies:
            self.aas.put_scaling_policy(
                PolicyName=s.policy_name,
                ServiceNamespace=NAMESPACE,
                ResourceId=s.resource_id,
                ScalableDimension=DIMENSION,
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": s.target_invocations_per_instance,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    },
                    "ScaleInCooldown": s.scale_in_cooldown,
                    "ScaleOutCooldown": s.scale_out_cooldown,
                    "DisableScaleIn": s.disable_scale_in,
                },
            )
            info["policy"] = {"name": s.policy_name, "status": "registered"}
        else:
            info["policy"] = {"name": policies[0]["PolicyName"], "status": "present"}
        self.progress("autoscaling", info)
        return info

    def smoke(self) -> dict:
        """InvokeEndpoint with a small JPEG; the answer must be the model's JSON predictions."""
        started = time.monotonic()
        try:
            response = self.runtime.invoke_endpoint(
                EndpointName=self.name,
                ContentType="image/jpeg",
                Accept="application/json",
                Body=smoke_image(),
            )
            payload = response["Body"].read()
            top = json.loads(payload)["predictions"][0]
            answer = {
                "label": str(top["label"]),
                "probability": float(top["probability"]),
                "variant": response.get("InvokedProductionVariant"),
                "seconds": round(time.monotonic() - started, 3),
            }
        except (ClientError, BotoCoreError) as exc:
            raise OpsError(f"smoke invocation failed: {exc}") from exc
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise OpsError(
                f"smoke invocation got an answer that is not predictions: {exc!r}"
            ) from exc
        self.progress("smoke", answer)
        return answer

    def delete_endpoint(self) -> None:
        self.sm.delete_endpoint(EndpointName=self.name)
        started = time.monotonic()
        while self.describe_endpoint() is not None:
            if time.monotonic() - started > self.plan.timeout_s:
                raise OpsError(f"endpoint {self.name} still exists after deletion was asked")
            time.sleep(self.plan.poll_s)

    def delete_unused(self, keep_configs: list[str], drop: list[str] | None = None) -> dict:
        """Delete our configs (``<endpoint>-<stamp>``) other than ``keep_configs`` and our models
        no kept config uses; with ``drop``, delete just those configs and models."""
        deleted: dict = {"endpoint_configs": [], "models": []}
        if drop is not None:
            configs, models = list(drop), list(drop)
        else:
            pages = self.sm.get_paginator("list_endpoint_configs").paginate(NameContains=self.name)
            configs = [
                c["EndpointConfigName"]
                for page in pages
                for c in page["EndpointConfigs"]
                if self.ours.match(c["EndpointConfigName"])
                and c["EndpointConfigName"] not in keep_configs
            ]
            used = {v["ModelName"] for c in keep_configs for v in self.variants(c)}
            pages = self.sm.get_paginator("list_models").paginate(NameContains=self.name)
            models = [
                m["ModelName"]
                for page in pages
                for m in page["Models"]
                if self.ours.match(m["ModelName"]) and m["ModelName"] not in used
            ]
        for name in configs:
            try:
                self.sm.delete_endpoint_config(EndpointConfigName=name)
                deleted["endpoint_configs"].append(name)
            except ClientError as exc:
                if "Could not find" not in str(exc):
                    raise
        for name in models:
            try:
                self.sm.delete_model(ModelName=name)
                deleted["models"].append(name)
            except ClientError as exc:
                if "Could not find" not in str(exc):
                    raise
        if deleted["endpoint_configs"] or deleted["models"]:
            self.progress("deleted", deleted)
        return deleted

    def previous_config(self, current: str) -> str | None:
        """Our newest config created before ``current``."""
        pages = self.sm.get_paginator("list_endpoint_configs").paginate(NameContains=self.name)
        configs = [c for page in pages for c in page["EndpointConfigs"]]
        by_name = {c["EndpointConfigName"]: c["CreationTime"] for c in configs}
        since = by_name.get(current)
        earlier = [
            (created, name)
            for name, created in by_name.items()
            if self.ours.match(name) and name != current and (since is None or created < since)
        ]
        return max(earlier)[1] if earlier else None


def _policy_request(policy: dict) -> dict:
    """PutScalingPolicy's request for a policy as DescribeScalingPolicies returned it."""
    request = {
        k: policy[k]
        for k in (
            "PolicyName",
            "ServiceNamespace",
            "ResourceId",
            "ScalableDimension",
            "PolicyType",
            "StepScalingPolicyConfiguration",
            "TargetTrackingScalingPolicyConfiguration",
            "PredictiveScalingPolicyConfiguration",
        )
        if k in policy
    }
    return request


def _failure_text(described: dict) -> str:
    return described.get("FailureReason") or f"status {described['EndpointStatus']}"


def promote(
    target: Target,
    settings: EndpointSettings,
    plan: PromotePlan,
    progress: Progress | None = None,
) -> PromotionResult:
    """Put ``plan.model_data`` on the endpoint (see the module's docstring)."""
    p = _Promoter(target, settings, plan, progress or (lambda event, info: None))
    started = time.monotonic()
    result = PromotionResult(target.name, settings.endpoint_name, "updated")
    result.model_data = plan.model_data
    try:
        _promote(p, result)
    except (ClientError, BotoCoreError) as exc:
        result.failure = str(exc)
        _drop_if_unserved(p, result)
        raise PromotionFailed(f"SageMaker request failed: {exc}", result) from exc
    finally:
        result.timings["total"] = round(time.monotonic() - started, 2)
    return result


def _timed(result: PromotionResult, step: str, started: float) -> None:
    result.timings[step] = round(time.monotonic() - started, 2)


def _promote(p: _Promoter, result: PromotionResult) -> None:
    current = p.describe_endpoint()
    if current is not None and current["EndpointStatus"] in TRANSITIONAL:
        raise OpsError(
            f"endpoint {p.name} is {current['EndpointStatus']}: wait until it is InService and "
            "run again"
        )
    if current is not None and current["EndpointStatus"] == "Failed":
        # A Failed endpoint only accepts DeleteEndpoint, and served nothing: replace it.
        p.progress("replacing", {"reason": _failure_text(current)})
        p.delete_endpoint()
        current = None
    current_config = current["EndpointConfigName"] if current else None
    variant_now = None
    if current_config:
        variant_now = next(
            (v for v in p.variants(current_config) if v["VariantName"] == p.settings.variant_name),
            None,
        )
    instance_type = p.plan.instance_type or (
        variant_now["InstanceType"] if variant_now else DEFAULT_INSTANCE_TYPE
    )
    count = p.settings.min_capacity
    for summary in (current or {}).get("ProductionVariants", []):
        if summary["VariantName"] == p.settings.variant_name:
            count = (
                summary.get("DesiredInstanceCount") or summary.get("CurrentInstanceCount") or count
            )
    result.instance_type, result.instance_count = instance_type, count
    result.previous_config = current_config

    step = time.monotonic()
    config, variant = p.create_model_and_config(p.plan.model_data, instance_type, count)
    result.model, result.endpoint_config = variant["ModelName"], config
    _timed(result, "create_model_and_config", step)

    step = time.monotonic()
    if current_config is None:
        result.action = "created"
        p.progress("create", {"config": config})
        p.sm.create_endpoint(EndpointName=p.name, EndpointConfigName=config)
        described = p.wait(config)
        _timed(result, "deploy", step)
        if described["EndpointStatus"] != "InService":
            _fail_first(p, result, f"endpoint {p.name} Failed: {_failure_text(described)}")
        step = time.monotonic()
        try:
            result.smoke = p.smoke()
        except OpsError as exc:
            _fail_first(p, result, str(exc))
        _timed(result, "smoke", step)
    else:
        described = p.update(config, current_config, result)
        _timed(result, "deploy", step)
        if described["EndpointStatus"] != "InService" or described["EndpointConfigName"] != config:
            # SageMaker kept (or put back) the old fleet: nothing to roll back but our leftovers.
            reason = f"update to {config} failed: {_failure_text(described)}"
            result.rollback = {"to": described.get("EndpointConfigName"), "by": "SageMaker"}
            _fail_update(p, result, reason)
        step = time.monotonic()
        try:
            result.smoke = p.smoke()
        except OpsError as exc:
            _timed(result, "smoke", step)
            step = time.monotonic()
            p.progress("rollback", {"to": current_config, "reason": str(exc)})
            back = p.update(current_config, config, result)
            _timed(result, "rollback", step)
            result.rollback = {
                "to": current_config,
                "by": "ops",
                "status": back["EndpointStatus"],
                "serving": back.get("EndpointConfigName"),
            }
            _fail_update(p, result, str(exc))
        _timed(result, "smoke", step)

    step = time.monotonic()
    result.autoscaling.update(p.ensure_autoscaling())
    _timed(result, "autoscaling", step)
    step = time.monotonic()
    keep = [config] + ([current_config] if current_config else [])
    result.deleted = p.delete_unused(keep)
    _timed(result, "cleanup", step)
    described = p.sm.describe_endpoint(EndpointName=p.name)
    for summary in described.get("ProductionVariants", []):
        if summary["VariantName"] == p.settings.variant_name:
            result.instance_count = summary.get("CurrentInstanceCount") or result.instance_count


def _drop_if_unserved(p: _Promoter, result: PromotionResult) -> None:
    """After a request failed: delete the new config and model unless the endpoint uses them."""
    if not result.endpoint_config:
        return
    try:
        serving = (p.describe_endpoint() or {}).get("EndpointConfigName")
        if serving != result.endpoint_config:
            result.deleted = p.delete_unused([], [result.endpoint_config])
    except (ClientError, BotoCoreError):
        pass  # the first error is the one to report


def _fail_first(p: _Promoter, result: PromotionResult, reason: str) -> None:
    """A first promotion failed: nothing served before, so delete what it made."""
    result.failure = reason
    p.delete_endpoint()
    result.deleted = p.delete_unused([], [result.endpoint_config])
    raise PromotionFailed(f"{reason}; the new endpoint, config and model were deleted", result)


def _fail_update(p: _Promoter, result: PromotionResult, reason: str) -> None:
    result.failure = reason
    serving = result.rollback.get("serving") if result.rollback else None
    serving = serving or (p.describe_endpoint() or {}).get("EndpointConfigName")
    if serving == result.endpoint_config:
        raise PromotionFailed(f"{reason}; the rollback failed: {p.name} serves {serving}", result)
    result.deleted = p.delete_unused([], [result.endpoint_config])
    raise PromotionFailed(f"{reason}; endpoint {p.name} serves {serving} (rolled back)", result)


def rollback(
    target: Target,
    settings: EndpointSettings,
    plan: PromotePlan,
    progress: Progress | None = None,
) -> PromotionResult:
    """Return the endpoint to the config it served before the current one (kept by the last
    promotion), and check it with a smoke invocation. Deletes nothing."""
    p = _Promoter(target, settings, plan, progress or (lambda event, info: None))
    started = time.monotonic()
    result = PromotionResult(target.name, settings.endpoint_name, "rolled-back")
    try:
        current = p.describe_endpoint()
        if current is None:
            raise OpsError(f"endpoint {p.name} does not exist: nothing to roll back")
        if current["EndpointStatus"] != "InService":
            raise OpsError(
                f"endpoint {p.name} is {current['EndpointStatus']}: it must be InService to roll "
                "back"
            )
        current_config = current["EndpointConfigName"]
        previous = p.previous_config(current_config)
        if previous is None:
            raise OpsError(
                f"no endpoint config older than {current_config} is kept: nothing to roll back to"
            )
        result.previous_config = current_config
        result.endpoint_config = previous
        variant = next(v for v in p.variants(previous) if v["VariantName"] == settings.variant_name)
        result.model, result.instance_type = variant["ModelName"], variant["InstanceType"]
        result.model_data = p.sm.describe_model(ModelName=variant["ModelName"])[
            "PrimaryContainer"
        ].get("ModelDataUrl", "")
        step = time.monotonic()
        described = p.update(previous, current_config, result)
        _timed(result, "deploy", step)
        if (
            described["EndpointStatus"] != "InService"
            or described["EndpointConfigName"] != previous
        ):
            result.failure = _failure_text(described)
            raise PromotionFailed(
                f"rollback to {previous} failed: {result.failure}; endpoint {p.name} serves "
                f"{described.get('EndpointConfigName')}",
                result,
            )
        step = time.monotonic()
        result.smoke = p.smoke()
        _timed(result, "smoke", step)
        for summary in described.get("ProductionVariants", []):
            if summary["VariantName"] == settings.variant_name:
                result.instance_count = summary.get("CurrentInstanceCount") or 0
    except (ClientError, BotoCoreError) as exc:
        result.failure = str(exc)
        raise PromotionFailed(f"SageMaker request failed: {exc}", result) from exc
    finally:
        result.timings["total"] = round(time.monotonic() - started, 2)
    return result
