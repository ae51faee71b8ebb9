"""`ops promote-endpoint` on the AWS path, against moto: the requests it sends, in order.

moto keeps SageMaker endpoints as records (InService at once) and Application Auto Scaling's
targets and policies, but has no UpdateEndpoint, and its InvokeEndpoint cannot take a JPEG body.
Both are answered here by small stand-ins: UpdateEndpoint applies AWS's documented rules to moto's
records (a registered variant's instance type cannot change; without RetainAllVariantProperties
the count resets to the new config's InitialInstanceCount; a failed update stays on the old config
with FailureReason set), and InvokeEndpoint answers as the model server does.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from typer.testing import CliRunner

from ops import promotion
from ops import target as target_module
from ops.cli import app
from ops.config import endpoint_settings, load_tfvars
from ops.errors import OpsError
from ops.promotion import PromotePlan, PromotionFailed, decide_update
from ops.target import Target

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "dogops-dev-artifacts-1234"
SETTINGS = endpoint_settings()
NAME = SETTINGS.endpoint_name
RESOURCE_ID = f"endpoint/{NAME}/variant/{SETTINGS.variant_name}"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
MODEL_A = f"s3://{BUCKET}/models/job-a/output/model.tar.gz"
MODEL_B = f"s3://{BUCKET}/models/job-b/output/model.tar.gz"
GOOD_ANSWER = {"predictions": [{"index": 2, "label": "Beagle", "probability": 0.91}]}


@dataclass
class FakeAws:
    """moto, every request recorded, and the stand-ins' knobs."""

    target: Target
    calls: list[tuple[str, dict]] = field(default_factory=list)
    answers: list = field(default_factory=list)  # next InvokeEndpoint answers (default: good)
    fail_next_update: str | None = None  # FailureReason for the next UpdateEndpoint

    def operations(self, *only: str) -> list[str]:
        return [name for name, _ in self.calls if not only or name in only]

    def sent(self, operation: str) -> list[dict]:
        return [params for name, params in self.calls if name == operation]

    @property
    def sm(self):
        return self.target.client("sagemaker")

    @property
    def aas(self):
        return self.target.client("application-autoscaling")


def _moto_endpoint():
    from moto.sagemaker.models import sagemaker_backends

    backend = sagemaker_backends[ACCOUNT][REGION]
    return backend, backend.endpoints[NAME]


def _registered(variant: str) -> bool:
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    targets = applicationautoscaling_backends[ACCOUNT][REGION].targets
    return f"endpoint/{NAME}/variant/{variant}" in targets.get(DIMENSION, {})


def _update_endpoint(fake: FakeAws, params: dict):
    """UpdateEndpoint as AWS documents it, on moto's records (see the module docstring)."""
    backend, endpoint = _moto_endpoint()
    old = {
        v["VariantName"]: v
        for v in backend.endpoint_configs[endpoint.endpoint_config_name].response_object[
            "ProductionVariants"
        ]
    }
    new_config = backend.endpoint_configs[params["EndpointConfigName"]].response_object
    for variant in old.values():
        kept = [
            v
            for v in new_config["ProductionVariants"]
            if v["VariantName"] == variant["VariantName"]
            and v["InstanceType"] == variant["InstanceType"]
        ]
        if not kept and _registered(variant["VariantName"]):
            return _error(
                "ValidationException",
                "The variant has a registered scalable target; deregister it before changing "
                "its instance type",
            )
    if fake.fail_next_update:
        endpoint.failure_reason, fake.fail_next_update = fake.fail_next_update, None
        return _ok({"EndpointArn": endpoint.arn})
    counts = {v["VariantName"]: v.get("DesiredInstanceCount") for v in endpoint.production_variants}
    endpoint.endpoint_config_name = params["EndpointConfigName"]
    endpoint.production_variants = endpoint._process_production_variants(
        new_config["ProductionVariants"]
    )
    endpoint.failure_reason = None
    if params.get("RetainAllVariantProperties"):
        for variant in endpoint.production_variants:
            if counts.get(variant["VariantName"]):
                variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = counts[
                    variant["VariantName"]
                ]
    return _ok({"EndpointArn": endpoint.arn})


def _ok(parsed: dict):
    return AWSResponse("https://fake", 200, {}, None), {
        **parsed,
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }


def _error(code: str, message: str, status: int = 400):
    return AWSResponse("https://fake", status, {}, None), {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


def _invoke(fake: FakeAws):
    answer = fake.answers.pop(0) if fake.answers else GOOD_ANSWER
    if isinstance(answer, tuple):
        return _error(*answer)
    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    return _ok(
        {
            "Body": io.BytesIO(body),
            "ContentType": "application/json",
            "InvokedProductionVariant": SETTINGS.variant_name,
        }
    )


@pytest.fixture
def aws(monkeypatch, tmp_path):
    real_session = boto3.Session

    with mock_aws():
        fake = FakeAws(target=None)  # type: ignore[arg-type]

        def session(*args, **kwargs):
            created = real_session(*args, **kwargs)
            created.events.register(
                "provide-client-params",
                lambda params, model, **_: fake.calls.append((model.name, dict(params))),
            )
            created.events.register(
                "before-call.sagemaker.UpdateEndpoint",
                lambda **_: _update_endpoint(fake, fake.calls[-1][1]),
            )
            created.events.register(
                "before-call.sagemaker-runtime.InvokeEndpoint", lambda **_: _invoke(fake)
            )
            return created

        iam = boto3.client("iam", region_name=REGION)
        training = iam.create_role(RoleName="dogops-dev-training", AssumeRolePolicyDocument="{}")
        serving = iam.create_role(RoleName="dogops-dev-endpoint", AssumeRolePolicyDocument="{}")
        outputs = {
            "region": REGION,
            "s3_bucket_name": BUCKET,
            "sagemaker_role_arn": training["Role"]["Arn"],
            "sagemaker_endpoint_role_arn": serving["Role"]["Arn"],
        }
        fake.target = Target(
            "aws",
            session(region_name=REGION),
            None,
            BUCKET,
            training["Role"]["Arn"],
            outputs,
        )
        monkeypatch.setattr(target_module.boto3, "Session", session)
        monkeypatch.setenv("DOGOPS_HOME", str(tmp_path / "home"))
        (tmp_path / "outputs.json").write_text(json.dumps(outputs))
        yield fake


def promote(fake: FakeAws, model_data: str, **plan) -> promotion.PromotionResult:
    return promotion.promote(
        fake.target, SETTINGS, PromotePlan(model_data=model_data, poll_s=0.01, **plan)
    )


def in_order(operations: list[str], *expected: str) -> bool:
    """``expected`` occur in ``operations`` in this order (others may come between)."""
    remaining = iter(operations)
    return all(any(op == wanted for op in remaining) for wanted in expected)


# ---- the update decision ---------------------------------------------------------------------


def test_same_instance_type_retains_the_variant_properties():
    current = [{"VariantName": "AllTraffic", "InstanceType": "ml.m5.large"}]
    decision = decide_update(current, {"VariantName": "AllTraffic", "InstanceType": "ml.m5.large"})
    assert decision.retain and decision.disrupted == ()


def test_a_new_instance_type_disrupts_the_variant_and_does_not_retain():
    current = [{"VariantName": "AllTraffic", "InstanceType": "ml.m5.large"}]
    decision = decide_update(current, {"VariantName": "AllTraffic", "InstanceType": "ml.c5.xlarge"})
    assert not decision.retain and decision.disrupted == ("AllTraffic",)
    assert "ml.m5.large -> ml.c5.xlarge" in decision.reason


def test_a_removed_variant_is_disrupted():
    current = [{"VariantName": "Old", "InstanceType": "ml.m5.large"}]
    decision = decide_update(current, {"VariantName": "AllTraffic", "InstanceType": "ml.m5.large"})
    assert not decision.retain and decision.disrupted == ("Old",)


# ---- first promotion --------------------------------------------------------------------------


def test_first_promotion_creates_the_endpoint_then_registers_autoscaling_from_the_tfvars(aws):
    result = promote(aws, MODEL_A)

    ops = aws.operations()
    assert in_order(
        ops,
        "DescribeEndpoint",
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "DescribeEndpoint",
        "InvokeEndpoint",
        "DescribeScalableTargets",
        "RegisterScalableTarget",
        "PutScalingPolicy",
    ), ops
    assert "UpdateEndpoint" not in ops
    assert result.action == "created" and result.endpoint == NAME == "dog-breed-classifier"
    model = aws.sent("CreateModel")[0]
    assert model["PrimaryContainer"]["ModelDataUrl"] == MODEL_A
    assert model["ExecutionRoleArn"].endswith(":role/dogops-dev-endpoint")  # not the training role
    assert "pytorch-inference" in model["PrimaryContainer"]["Image"]
    (variant,) = aws.sent("CreateEndpointConfig")[0]["ProductionVariants"]
    assert variant["VariantName"] == SETTINGS.variant_name
    assert variant["InitialInstanceCount"] == SETTINGS.min_capacity
    assert variant["InstanceType"] == promotion.DEFAULT_INSTANCE_TYPE
    assert aws.sent("CreateEndpoint")[0]["EndpointConfigName"] == result.endpoint_config
    body = aws.sent("InvokeEndpoint")[0]
    assert body["ContentType"] == "image/jpeg" and body["Body"][:2] == b"\xff\xd8"

    tfvars = load_tfvars()
    (target,) = aws.aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == RESOURCE_ID
    assert (target["MinCapacity"], target["MaxCapacity"]) == (
        tfvars["min_capacity"],
        tfvars["max_capacity"],
    )
    (policy,) = aws.aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert policy["PolicyName"] == f"{NAME}-{SETTINGS.variant_name}-invocations"  # Terraform's
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == tfvars["target_invocations_per_instance"]
    assert tracking["ScaleInCooldown"] == tfvars["scale_in_cooldown"] == 30
    assert tracking["ScaleOutCooldown"] == tfvars["scale_out_cooldown"] == 300
    metric = tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
    assert metric == "SageMakerVariantInvocationsPerInstance"
    assert result.autoscaling["status"] == "registered"
    assert result.smoke["label"] == "Beagle"


def test_a_scalable_target_terraform_registered_is_left_alone(aws):
    promote(aws, MODEL_A)
    # As `terraform apply` would leave it after an operator raised the floor.
    aws.aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=RESOURCE_ID,
        ScalableDimension=DIMENSION,
        MinCapacity=2,
        MaxCapacity=4,
    )
    aws.calls.clear()

    result = promote(aws, MODEL_B)

    assert "DescribeScalableTargets" in aws.operations()
    assert not aws.sent("RegisterScalableTarget") and not aws.sent("PutScalingPolicy")
    assert not aws.sent("DeregisterScalableTarget")
    (target,) = aws.aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["MinCapacity"] == 2
    assert result.autoscaling["status"] == "present"


def test_cli_promotes_the_artifact_ops_train_recorded(aws, tmp_path):
    trained = tmp_path / "home" / "trained"
    trained.mkdir(parents=True)
    (trained / "aws.json").write_text(json.dumps({"model_artifact": MODEL_A}))

    outcome = CliRunner().invoke(
        app,
        [
            *("promote-endpoint", "--target", "aws", "--outputs", str(tmp_path / "outputs.json")),
            *("--poll", "0.05", "--json"),
        ],
    )

    assert outcome.exit_code == 0, outcome.output
    shown = json.loads(outcome.stdout)
    assert shown["endpoint"] == NAME and shown["model_data"] == MODEL_A
    assert shown["action"] == "created" and shown["rollback"] is None
    assert {"create_model_and_config", "deploy", "smoke", "total"} <= set(shown["timings"])


def test_cli_without_a_recorded_artifact_says_to_run_ops_train(aws, tmp_path):
    outcome = CliRunner().invoke(
        app, ["promote-endpoint", "--target", "aws", "--outputs", str(tmp_path / "outputs.json")]
    )
    assert outcome.exit_code == 1
    assert "ops train --target aws" in outcome.stderr and "--model-data" in outcome.stderr
    assert not aws.sent("CreateModel")


def test_a_first_endpoint_that_fails_is_reported_and_removed(aws):
    def failed(parsed, **_):
        parsed.update(EndpointStatus="Failed", FailureReason="The primary container did not pass")

    aws.target.session.events.register("after-call.sagemaker.DescribeEndpoint", failed)

    with pytest.raises(PromotionFailed, match="did not pass") as caught:
        promote(aws, MODEL_A)

    assert "DeleteEndpoint" in aws.operations()
    assert caught.value.result.deleted == {
        "endpoint_configs": [caught.value.result.endpoint_config],
        "models": [caught.value.result.model],
    }
    assert not aws.sent("RegisterScalableTarget")


# ---- updates ----------------------------------------------------------------------------------


def scale_to(count: int) -> None:
    """What autoscaling does between promotions: set the variant's desired count."""
    _, endpoint = _moto_endpoint()
    for variant in endpoint.production_variants:
        variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = count


def serving_count() -> int:
    _, endpoint = _moto_endpoint()
    return endpoint.production_variants[0]["CurrentInstanceCount"]


def test_an_update_on_the_same_instance_type_keeps_the_autoscaled_count(aws):
    first = promote(aws, MODEL_A)
    scale_to(3)
    aws.calls.clear()

    result = promote(aws, MODEL_B)

    (update,) = aws.sent("UpdateEndpoint")
    assert update["RetainAllVariantProperties"] is True
    assert "ExcludeRetainedVariantProperties" not in update
    assert not aws.sent("DeregisterScalableTarget")
    assert serving_count() == 3 and result.instance_count == 3
    assert result.previous_config == first.endpoint_config
    assert aws.sm.describe_endpoint(EndpointName=NAME)["EndpointConfigName"] == (
        result.endpoint_config
    )


def test_an_instance_type_change_deregisters_updates_and_registers_the_same_numbers(aws):
    promote(aws, MODEL_A)
    aws.aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=RESOURCE_ID,
        ScalableDimension=DIMENSION,
        MinCapacity=2,
        MaxCapacity=4,
    )
    scale_to(3)
    before = aws.aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    aws.calls.clear()

    result = promote(aws, MODEL_B, instance_type="ml.c5.xlarge")

    ops = aws.operations()
    assert in_order(
        ops,
        "DescribeScalableTargets",
        "DescribeScalingPolicies",
        "DeregisterScalableTarget",
        "UpdateEndpoint",
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "InvokeEndpoint",
    ), ops
    assert aws.sent("UpdateEndpoint")[0]["RetainAllVariantProperties"] is False
    (variant,) = aws.sent("CreateEndpointConfig")[0]["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.xlarge", 3)
    assert serving_count() == 3
    (target,) = aws.aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)
    after = aws.aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert [p["TargetTrackingScalingPolicyConfiguration"] for p in after] == [
        p["TargetTrackingScalingPolicyConfiguration"] for p in before
    ]
    assert result.autoscaling["re_registered"] == [RESOURCE_ID]


def test_a_failed_update_keeps_the_old_config_restores_autoscaling_and_cleans_up(aws):
    first = promote(aws, MODEL_A)
    aws.fail_next_update = "The primary container for production variant AllTraffic did not pass"
    aws.calls.clear()

    with pytest.raises(PromotionFailed, match="did not pass") as caught:
        promote(aws, MODEL_B, instance_type="ml.c5.xlarge")

    result = caught.value.result
    assert result.rollback == {"to": first.endpoint_config, "by": "SageMaker"}
    assert aws.sm.describe_endpoint(EndpointName=NAME)["EndpointConfigName"] == (
        first.endpoint_config
    )
    assert in_order(aws.operations(), "DeregisterScalableTarget", "RegisterScalableTarget")
    assert result.deleted["endpoint_configs"] == [result.endpoint_config]
    assert aws.aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]


def test_a_failed_smoke_invocation_rolls_back_to_the_previous_config(aws):
    first = promote(aws, MODEL_A)
    aws.answers = [("ModelError", "Received server error (500) from primary", 424)]
    aws.calls.clear()

    with pytest.raises(PromotionFailed, match="smoke invocation failed") as caught:
        promote(aws, MODEL_B)

    updates = [u["EndpointConfigName"] for u in aws.sent("UpdateEndpoint")]
    assert updates == [caught.value.result.endpoint_config, first.endpoint_config]
    assert caught.value.result.rollback["serving"] == first.endpoint_config
    assert aws.sm.describe_endpoint(EndpointName=NAME)["EndpointConfigName"] == (
        first.endpoint_config
    )


def test_an_answer_that_is_not_predictions_fails_the_smoke_invocation(aws):
    promote(aws, MODEL_A)
    aws.answers = [b"<html>not the model</html>"]
    with pytest.raises(PromotionFailed, match="not predictions"):
        promote(aws, MODEL_B)


def test_cleanup_keeps_the_current_and_previous_configs_and_rollback_returns(aws):
    a = promote(aws, MODEL_A)
    b = promote(aws, MODEL_B)
    c = promote(aws, MODEL_A)

    configs = {x["EndpointConfigName"] for x in aws.sm.list_endpoint_configs()["EndpointConfigs"]}
    models = {x["ModelName"] for x in aws.sm.list_models()["Models"]}
    assert configs == {b.endpoint_config, c.endpoint_config}
    assert models == {b.model, c.model}
    assert c.deleted == {"endpoint_configs": [a.endpoint_config], "models": [a.model]}

    back = promotion.rollback(aws.target, SETTINGS, PromotePlan(poll_s=0.01))

    assert back.action == "rolled-back" and back.endpoint_config == b.endpoint_config
    assert back.model_data == MODEL_B and back.smoke["label"] == "Beagle"
    assert aws.sm.describe_endpoint(EndpointName=NAME)["EndpointConfigName"] == b.endpoint_config
    with pytest.raises(OpsError, match="nothing to roll back to"):
        promotion.rollback(aws.target, SETTINGS, PromotePlan(poll_s=0.01))
