"""`ops promote-endpoint` against the session's local cloud: a real endpoint of model servers is
created, updated to a second model and rolled back, each step checked by invoking it."""

from __future__ import annotations

import contextlib
import json
import os
import time

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from ops.cli import app
from ops.config import endpoint_settings
from ops.localcloud import control
from ops.promotion import smoke_image
from tests.localcloud.conftest import BUCKET

SETTINGS = endpoint_settings()
NAME = SETTINGS.endpoint_name
POLICY = SETTINGS.policy_name
FIRST = ["alpha", "beta", "gamma"]
SECOND = ["delta", "epsilon", "zeta"]


def tiny_artifact(folder, class_names: list[str], broken: bool = False) -> bytes:
    """model.tar.gz as ml/train.py writes it: random resnet18 weights (no training, no download),
    32 px, naming ``class_names``, so an answer tells which model served it; ``broken``: weights
    that do not load, so its model servers exit at start."""
    import torch

    from ml.model import ModelConfig, build_model
    from ml.train import export_artifact
    from ops.artifacts import pack_artifact

    torch.manual_seed(0)
    config = ModelConfig(arch="resnet18", num_classes=len(class_names), hidden=16, dropout=0.0)
    model = build_model(config, weights="none")
    export_artifact(model, config, class_names, 32, folder / "model")
    if broken:
        (folder / "model" / "model.pth").write_bytes(b"not a state dict")
    return pack_artifact(folder / "model", folder / "model.tar.gz").read_bytes()


@pytest.fixture(scope="module")
def artifacts(staged, tmp_path_factory) -> dict[str, str]:
    s3 = staged.client("s3")
    uris = {}
    for label, names in (("first", FIRST), ("second", SECOND), ("broken", SECOND)):
        key = f"models/promote-{label}/output/model.tar.gz"
        body = tiny_artifact(tmp_path_factory.mktemp(label), names, broken=label == "broken")
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        uris[label] = f"s3://{BUCKET}/{key}"
    return uris


@pytest.fixture
def registered(cloud, staged, tmp_path, monkeypatch):
    """Make the session's in-process local cloud the one `ops` finds; afterwards remove the
    endpoint (its model servers stop) and its scalable target."""
    monkeypatch.setenv("DOGOPS_HOME", str(tmp_path))
    control.register(cloud.url, os.getpid())
    yield tmp_path
    with contextlib.suppress(ClientError):
        staged.client("application-autoscaling").deregister_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=SETTINGS.resource_id,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        )
    with contextlib.suppress(ClientError):
        staged.client("sagemaker").delete_endpoint(EndpointName=NAME)


def promote(*args: str) -> dict:
    outcome = CliRunner().invoke(app, ["promote-endpoint", *args, "--poll", "0.2", "--json"])
    assert outcome.exit_code == 0, outcome.output
    return json.loads(outcome.stdout)


def answered_by(staged) -> str:
    runtime = staged.client("sagemaker-runtime")
    response = runtime.invoke_endpoint(
        EndpointName=NAME, ContentType="image/jpeg", Body=smoke_image()
    )
    return json.loads(response["Body"].read())["predictions"][0]["label"]


def scaling(staged) -> tuple[int, int, list[str]]:
    """The variant's scalable target bounds and policy names in the local cloud."""
    aas = staged.client("application-autoscaling")
    (target,) = aas.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[SETTINGS.resource_id]
    )["ScalableTargets"]
    policies = aas.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=SETTINGS.resource_id
    )["ScalingPolicies"]
    return target["MinCapacity"], target["MaxCapacity"], [p["PolicyName"] for p in policies]


@pytest.mark.slow
def test_promote_update_and_roll_back_a_local_endpoint(registered, staged, artifacts):
    started = time.monotonic()
    first = promote("--model-data", artifacts["first"])
    created_s = time.monotonic() - started
    assert first["action"] == "created" and first["smoke"]["label"] in FIRST
    described = staged.client("sagemaker").describe_endpoint(EndpointName=NAME)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == first["endpoint_config"]
    assert answered_by(staged) in FIRST
    assert first["autoscaling"]["status"] == "registered"
    assert scaling(staged) == (SETTINGS.min_capacity, SETTINGS.max_capacity, [POLICY])

    # A new instance type: the scalable target goes before the update and comes back after.
    started = time.monotonic()
    second = promote("--model-data", artifacts["second"], "--instance-type", "ml.c5.xlarge")
    updated_s = time.monotonic() - started
    assert second["action"] == "updated" and second["retained_variant_properties"] is False
    assert second["autoscaling"]["re_registered"] == [SETTINGS.resource_id]
    assert second["previous_config"] == first["endpoint_config"]
    assert second["smoke"]["label"] in SECOND and answered_by(staged) in SECOND
    assert scaling(staged) == (SETTINGS.min_capacity, SETTINGS.max_capacity, [POLICY])

    # A model that does not load: the endpoint stays on the second model, says why, and the
    # broken config and model are gone.
    failed = CliRunner().invoke(
        app,
        ["promote-endpoint", "--model-data", artifacts["broken"], "--poll", "0.2", "--json"],
    )
    assert failed.exit_code == 1, failed.output
    outcome = json.loads(failed.stdout)
    assert "did not pass the ping health check" in outcome["failure"]
    assert outcome["retained_variant_properties"] is True  # same instance type
    assert outcome["rollback"] == {"to": second["endpoint_config"], "by": "SageMaker"}
    assert outcome["deleted"]["endpoint_configs"] == [outcome["endpoint_config"]]
    assert "rolled back" in failed.stderr
    assert answered_by(staged) in SECOND

    # Without --json, as a person reads it (not a terminal: plain lines, no spinner).
    back = CliRunner().invoke(app, ["promote-endpoint", "--rollback", "--poll", "0.2"])
    assert back.exit_code == 0, back.output
    assert f"endpoint {NAME} rolled-back: config {first['endpoint_config']}" in back.stdout
    assert "endpoint InService" in back.stderr and "smoke invocation answered" in back.stderr
    assert answered_by(staged) in FIRST
    assert scaling(staged) == (SETTINGS.min_capacity, SETTINGS.max_capacity, [POLICY])
    print(f"promotion wall time: create {created_s:.1f} s, update {updated_s:.1f} s")
