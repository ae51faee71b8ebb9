"""The local bootstrap creates in the local cloud what terraform/ declares, from a changed copy
of the tfvars, and a second run changes only what changed (ops.localcloud.bootstrap)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import uuid
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from ops import config
from ops import target as target_module
from ops.errors import OpsError
from ops.localcloud import bootstrap, control
from tests.localcloud.conftest import run_ops
from tests.localcloud.test_control import imported
from tests.ops.test_config import copy_terraform, set_default, set_tfvars


@pytest.fixture
def changed(tmp_path: Path, cloud):
    """A copy of terraform/ whose tfvars name things no other test uses, with numbers that
    differ from the repository's; the function is deleted afterwards (its environments stop)."""
    tfvars = copy_terraform(tmp_path)
    tag = uuid.uuid4().hex[:8]
    set_tfvars(
        tfvars,
        name_prefix=f"bt-{tag}",
        bucket_name_prefix=f"bt-{tag}-artifacts-",
        lambda_function_name=f"bt-{tag}-classifier",
        lambda_alias_name="blue",
        reserved_concurrency=7,
        provisioned_concurrency=1,
        endpoint_name=f"bt-{tag}-endpoint",
        max_capacity=6,
        lambda_log_retention_in_days=14,
    )
    variables = tfvars.parents[2] / "modules" / "lambda_function" / "variables.tf"
    set_default(variables, "memory_size", 256)
    yield tfvars
    lam = client(cloud, "lambda")
    name = config.lambda_settings(tfvars).function_name
    with contextlib.suppress(lam.exceptions.ResourceNotFoundException):
        lam.delete_function(FunctionName=name)


def client(cloud, service: str):
    import boto3

    environment = control.client_environment(cloud.url)
    return boto3.client(
        service,
        endpoint_url=cloud.url,
        region_name=environment["AWS_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
    )


def test_the_bootstrap_imports_nothing_server_side():
    server_side = ("moto", "uvicorn", "starlette", "torch", "optuna", "ops.localcloud.app")
    assert imported("ops.localcloud.bootstrap", server_side) == []


def test_the_package_is_the_source_folder_minus_the_excludes(tmp_path: Path):
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "handler.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "mod.py").write_text("y = 2\n")
    (tmp_path / "pkg" / "mod.pyc").write_bytes(b"\0")
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    excludes = config.lambda_settings().excludes
    package = bootstrap.archive(tmp_path, excludes)
    assert sorted(zipfile.ZipFile(BytesIO(package)).namelist()) == ["handler.py", "pkg/mod.py"]
    assert bootstrap.archive(tmp_path, excludes) == package  # same files, same bytes
    expected = base64.b64encode(hashlib.sha256(package).digest()).decode()
    assert bootstrap.code_sha256(package) == expected


def test_the_local_resources_follow_the_changed_tfvars(cloud, changed: Path, tmp_path: Path):
    lines: list[str] = []
    report = bootstrap.run(cloud.url, tfvars=changed, home=tmp_path, progress=lines.append)
    settings = config.lambda_settings(changed)
    name = settings.function_name
    assert name.endswith("-classifier") and name.startswith("bt-")
    assert any(line.startswith(f"function {name}: created") for line in lines)

    lam = client(cloud, "lambda")
    function = lam.get_function(FunctionName=name)["Configuration"]
    assert function["MemorySize"] == 256  # the module default changed in the copy
    assert function["Timeout"] == 65
    assert function["Handler"] == "handler.handler"
    assert function["Environment"]["Variables"] == {"ENDPOINT_NAME": settings.endpoint_name}
    assert settings.endpoint_name.endswith("-endpoint")
    assert function["Role"].endswith(f":role/{config.load_tfvars(changed)['name_prefix']}-lambda")
    alias = lam.get_alias(FunctionName=name, Name="blue")
    assert alias["FunctionVersion"] == "1"
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 7
    provisioned = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="blue")
    assert provisioned["RequestedProvisionedConcurrentExecutions"] == 1
    assert provisioned["Status"] in ("IN_PROGRESS", "READY")  # not waited for

    logs = client(cloud, "logs")
    (group,) = [
        g
        for g in logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]
        if g["logGroupName"] == f"/aws/lambda/{name}"
    ]
    assert group["retentionInDays"] == 14

    bucket = report.outputs["s3_bucket_name"]
    assert bucket == config.storage_settings(changed).bucket_name_prefix + "local"
    client(cloud, "s3").head_bucket(Bucket=bucket)
    iam = client(cloud, "iam")
    for role in config.iam_roles(bootstrap_facts(report), changed):
        found = iam.get_role(RoleName=role.name)["Role"]
        assert found["AssumeRolePolicyDocument"] == role.assume_role_policy
    prefix = config.load_tfvars(changed)["name_prefix"]
    inline = iam.get_role_policy(RoleName=f"{prefix}-lambda", PolicyName=f"{prefix}-lambda")
    (invoke,) = [s for s in inline["PolicyDocument"]["Statement"] if s["Sid"] == "InvokeEndpoint"]
    assert invoke["Resource"].endswith(f":endpoint/{settings.endpoint_name}")

    recorded = bootstrap.read_outputs(tmp_path)
    assert recorded["endpoint_name"] == settings.endpoint_name
    assert recorded["lambda_alias_arn"] == alias["AliasArn"]
    assert recorded["sagemaker_role_arn"].endswith(f":role/{prefix}-sagemaker-training")
    endpoint = config.endpoint_settings(changed)
    assert endpoint.max_capacity == 6
    assert recorded["endpoint_autoscaling_resource_id"] == endpoint.resource_id


def bootstrap_facts(report: bootstrap.Report) -> dict:
    """The facts the trust policies need, from what the bootstrap recorded."""
    account = report.outputs["sagemaker_role_arn"].split(":")[4]
    return {
        "data.aws_caller_identity.current.account_id": account,
        "data.aws_partition.current.partition": "aws",
        "data.aws_region.current.region": report.outputs["region"],
    }


def test_a_second_run_changes_nothing_then_follows_a_changed_value(
    cloud, changed: Path, tmp_path: Path
):
    bootstrap.run(cloud.url, tfvars=changed, home=tmp_path)
    again = bootstrap.run(cloud.url, tfvars=changed, home=tmp_path, wait_provisioned=True)
    assert again.changed == []
    name = config.lambda_settings(changed).function_name
    lam = client(cloud, "lambda")
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]] == [
        "$LATEST",
        "1",
    ]
    provisioned = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="blue")
    assert provisioned["Status"] == "READY"  # waited for, as asked

    set_tfvars(changed, reserved_concurrency=9, endpoint_name="renamed-endpoint")
    third = bootstrap.run(cloud.url, tfvars=changed, home=tmp_path)
    prefix = config.load_tfvars(changed)["name_prefix"]
    assert third.changed == [
        # The endpoint's name is in the endpoint role's description and in two inline policies
        # (the endpoint the function may invoke, the endpoint's log group).
        f"role {prefix}-sagemaker-endpoint",
        f"inline policy {prefix}-lambda of {prefix}-lambda",
        f"inline policy {prefix}-sagemaker-endpoint of {prefix}-sagemaker-endpoint",
        f"function {name}",
        f"version of {name}",
        f"alias {name}:blue",
        f"reserved concurrency of {name}",
    ]
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 9
    alias = lam.get_alias(FunctionName=name, Name="blue")
    assert alias["FunctionVersion"] == "2"
    published = lam.get_function(FunctionName=name, Qualifier="2")["Configuration"]
    assert published["Environment"]["Variables"]["ENDPOINT_NAME"] == "renamed-endpoint"

    set_tfvars(changed, provisioned_concurrency=0)
    fourth = bootstrap.run(cloud.url, tfvars=changed, home=tmp_path)
    assert fourth.changed == [f"provisioned concurrency of {name}:blue"]
    with pytest.raises(lam.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="blue")


def test_a_rerun_publishes_and_moves_the_alias_where_an_interrupted_run_stopped(
    cloud, changed: Path, tmp_path: Path
):
    set_tfvars(changed, provisioned_concurrency=0)
    bootstrap.run(cloud.url, tfvars=changed, home=tmp_path)
    name = config.lambda_settings(changed).function_name
    lam = client(cloud, "lambda")
    # A run updated $LATEST to a new memory size, then failed before PublishVersion (its wait
    # for the update timed out): the next run finds $LATEST as wanted, but unpublished.
    variables = changed.parents[2] / "modules" / "lambda_function" / "variables.tf"
    set_default(variables, "memory_size", 512)
    lam.update_function_configuration(FunctionName=name, MemorySize=512)
    rerun = bootstrap.run(cloud.url, tfvars=changed, home=tmp_path)
    assert rerun.changed == [f"version of {name}", f"alias {name}:blue"]
    assert lam.get_alias(FunctionName=name, Name="blue")["FunctionVersion"] == "2"
    published = lam.get_function(FunctionName=name, Qualifier="2")["Configuration"]
    assert published["MemorySize"] == 512
    # A run published, then failed before moving the alias: the next one moves it, and
    # publishes nothing more.
    lam.update_alias(FunctionName=name, Name="blue", FunctionVersion="1")
    again = bootstrap.run(cloud.url, tfvars=changed, home=tmp_path)
    assert again.changed == [f"alias {name}:blue"]
    assert lam.get_alias(FunctionName=name, Name="blue")["FunctionVersion"] == "2"
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]


def test_the_bucket_is_made_in_the_providers_region(cloud, changed: Path, tmp_path: Path):
    """Outside us-east-1 CreateBucket must name the region (S3 refuses it otherwise)."""
    set_tfvars(changed, region="eu-west-1")
    run = bootstrap.Bootstrap(cloud.url, tfvars=changed, home=tmp_path)
    run.account()
    run.storage()
    bucket = bootstrap.local_bucket_name(config.storage_settings(changed).bucket_name_prefix)
    s3 = client(cloud, "s3")
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    assert run.facts["module.storage.aws_s3_bucket.this.region"] == "eu-west-1"


def test_a_refused_reservation_names_the_step_and_aws_reason(cloud, changed: Path, tmp_path):
    # 950 of the default limit of 1000 leaves fewer than the 100 AWS keeps unreserved.
    set_tfvars(changed, reserved_concurrency=950)
    name = config.lambda_settings(changed).function_name
    with pytest.raises(OpsError) as refused:
        bootstrap.run(cloud.url, tfvars=changed, home=tmp_path)
    message = str(refused.value)
    assert message.startswith(f"bootstrap: reserved concurrency of {name}: ")
    assert "PutFunctionConcurrency was refused: InvalidParameterValueException" in message
    assert "UnreservedConcurrentExecution below its minimum value of [100]" in message


def test_ops_local_up_bootstraps_and_ops_train_finds_the_bucket(tmp_path: Path, monkeypatch):
    home = tmp_path / "home"
    tfvars = copy_terraform(tmp_path)
    set_tfvars(tfvars, provisioned_concurrency=1)
    env = {**os.environ, "DOGOPS_HOME": str(home)}
    up = run_ops("local", "up", "--detach", "--json", "--tfvars", str(tfvars), env=env)
    try:
        assert up.returncode == 0, up.stderr
        document = json.loads(up.stdout)
        created = document["bootstrap"]
        assert created["outputs"]["lambda_function_name"] == config.lambda_settings().function_name
        assert "bootstrap: function " in up.stderr  # progress on stderr with --json
        skipped = run_ops("local", "up", "--detach", "--json", "--no-bootstrap", env=env)
        assert json.loads(skipped.stdout)["bootstrap"] is None
        # The local target (what `ops train` uses) takes the bootstrapped bucket and role.
        monkeypatch.setenv("DOGOPS_HOME", str(home))
        local = target_module.resolve("local")
        assert local.bucket == created["outputs"]["s3_bucket_name"]
        assert local.sagemaker_role_arn == created["outputs"]["sagemaker_role_arn"]
    finally:
        run_ops("local", "down", env=env)


def test_ops_local_up_says_which_step_a_low_account_limit_refuses(tmp_path: Path):
    """A new account's low concurrency limit refuses the mission's reserved 100, as on AWS;
    `ops local up` says so and leaves the cloud running."""
    env = {**os.environ, "DOGOPS_HOME": str(tmp_path), "DOGOPS_LAMBDA_CONCURRENCY_LIMIT": "50"}
    up = run_ops("local", "up", "--detach", env=env)
    try:
        assert up.returncode == 1
        name = config.lambda_settings().function_name
        assert f"reserved concurrency of {name}: PutFunctionConcurrency was refused" in up.stderr
        assert "the local cloud keeps running" in up.stderr
        assert run_ops("local", "status", env=env).returncode == 0
    finally:
        run_ops("local", "down", env=env)


def test_a_foreground_bootstrap_says_in_one_line_what_stopped_it(
    cloud, changed: Path, tmp_path: Path, capsys
):
    """`ops local up` (foreground) bootstraps in a thread beside the server: an exception that
    is not an OpsError (here the outputs' folder is a file) is one error line, and a JSON line
    with --json, not a thread's traceback."""
    from ops.cli import local

    home = tmp_path / "home"
    home.write_text("a file where the outputs' folder should be")
    set_tfvars(changed, provisioned_concurrency=0)
    local._bootstrap_when_healthy(cloud.url, home, changed, False, True)
    captured = capsys.readouterr()
    (error,) = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert error.startswith("error: bootstrap failed: FileExistsError: ")
    assert f"the local cloud keeps running at {cloud.url}" in error
    assert "Traceback" not in captured.err
    document = json.loads(captured.out.splitlines()[-1])
    assert document == {"bootstrap": None, "error": error.removeprefix("error: ")}
