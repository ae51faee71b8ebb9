"""The settings Terraform applies, read from the same files: terraform/envs/dev/terraform.tfvars
and the Terraform code around it.

One source of truth (DESIGN.md, contract 4): every name and number of the dev environment is
declared once, in the tfvars or as a variable's default in a module (the function's handler,
runtime, memory and timeout), or in a module's expressions (a role is named
``"${var.name_prefix}-lambda"``). Terraform applies them on AWS; `ops` reads them here, through
`ops.hcl`, which evaluates those expressions: to name the endpoint it promotes, to register the
autoscaling policy when Terraform has not, and to bootstrap the same resources in the local cloud
(`ops.localcloud.bootstrap`). Nothing below repeats a name or a number of terraform/.

Every function takes the tfvars path and the Terraform root folder, so a test can point them at
a changed copy of terraform/.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops import hcl

REPO = Path(__file__).resolve().parent.parent
TERRAFORM_ENV = REPO / "terraform" / "envs" / "dev"
TFVARS = TERRAFORM_ENV / "terraform.tfvars"


def load_tfvars(path: Path = TFVARS) -> dict[str, Any]:
    """The tfvars as {name: value} (a copy: callers may change it)."""
    return hcl.read_tfvars(Path(path))


def terraform_root(path: Path = TFVARS, root: Path | None = None) -> Path:
    """The root module the tfvars are for: ``root`` if given; else the tfvars' own folder when it
    holds .tf files (terraform.tfvars in its root, as here); else terraform/envs/dev (like
    ``terraform -chdir=terraform/envs/dev plan -var-file=PATH``)."""
    if root is not None:
        return Path(root)
    folder = Path(path).resolve().parent
    return folder if any(folder.glob("*.tf")) else TERRAFORM_ENV


def root_module(
    path: Path = TFVARS, root: Path | None = None, facts: Mapping[str, Any] | None = None
) -> hcl.Module:
    """The root module with the tfvars' values. ``facts``: what AWS computes, by full address
    (``module.storage.aws_s3_bucket.this.arn``; see `ops.hcl`); the bootstrap adds to them as it
    creates resources."""
    return hcl.Module(terraform_root(path, root), load_tfvars(path), facts)


@dataclass(frozen=True)
class EndpointSettings:
    """The endpoint `ops promote-endpoint` creates or updates, and its target-tracking policy."""

    endpoint_name: str
    variant_name: str
    autoscaling: bool  # the endpoint_autoscaling module's count: register the target and policy
    min_capacity: int
    max_capacity: int
    target_invocations_per_instance: float
    scale_in_cooldown: int
    scale_out_cooldown: int
    disable_scale_in: bool
    resource_id: str  # the scalable target's ResourceId, as the module builds it
    policy_name: str  # the policy's name: Terraform and `ops` create or update the same one


def endpoint_settings(path: Path = TFVARS, root: Path | None = None) -> EndpointSettings:
    module = root_module(path, root)
    scaling = module.child("endpoint_autoscaling")
    target = scaling.block("resource", "aws_appautoscaling_target", "this")
    policy = scaling.block("resource", "aws_appautoscaling_policy", "this")
    (tracking,) = policy.children("target_tracking_scaling_policy_configuration")
    return EndpointSettings(
        endpoint_name=str(module.var("endpoint_name")),
        variant_name=str(scaling.var("variant_name")),
        autoscaling=module.count(module.block("module", "endpoint_autoscaling")) > 0,
        min_capacity=int(scaling.attribute(target, "min_capacity")),
        max_capacity=int(scaling.attribute(target, "max_capacity")),
        target_invocations_per_instance=float(scaling.attribute(tracking, "target_value")),
        scale_in_cooldown=int(scaling.attribute(tracking, "scale_in_cooldown")),
        scale_out_cooldown=int(scaling.attribute(tracking, "scale_out_cooldown")),
        disable_scale_in=bool(scaling.attribute(tracking, "disable_scale_in")),
        resource_id=str(scaling.attribute(target, "resource_id")),
        policy_name=str(scaling.attribute(policy, "name")),
    )


def region(path: Path = TFVARS, root: Path | None = None) -> str:
    """The AWS provider's region (providers.tf)."""
    module = root_module(path, root)
    return str(module.attribute(module.block("provider", "aws"), "region"))


@dataclass(frozen=True)
class LambdaSettings:
    """The function in front of the endpoint, as the lambda_function module declares it."""

    function_name: str
    description: str
    handler: str
    runtime: str
    architectures: tuple[str, ...]
    memory_size: int
    timeout: int
    environment: Mapping[str, str]  # ENDPOINT_NAME = the endpoint's name, and any extra
    tracing_mode: str
    publish: bool
    reserved_concurrency: int
    alias_name: str
    alias_description: str
    provisioned_concurrency: int  # 0: no provisioned concurrency config (the module's count)
    source_dir: Path  # resolved: relative paths start at the root module, where terraform runs
    excludes: tuple[str, ...]  # the archive_file's patterns, relative to source_dir
    log_group_name: str
    log_retention_in_days: int

    @property
    def endpoint_name(self) -> str:
        return self.environment["ENDPOINT_NAME"]


def lambda_settings(path: Path = TFVARS, root: Path | None = None) -> LambdaSettings:
    """Raises `hcl.HclError` where Terraform's plan would fail (a validation, the precondition
    that provisioned concurrency may not exceed reserved)."""
    module = root_module(path, root)
    function = module.child("lambda_function")
    resource = function.block("resource", "aws_lambda_function", "this")
    alias = function.block("resource", "aws_lambda_alias", "this")
    provisioned = function.block("resource", "aws_lambda_provisioned_concurrency_config", "this")
    archive = function.block("data", "archive_file", "this")
    log_group = function.block("resource", "aws_cloudwatch_log_group", "this")
    count = function.count(provisioned)
    if count:
        function.check_preconditions(provisioned)
    (environment,) = resource.children("environment")
    (tracing,) = resource.children("tracing_config")
    return LambdaSettings(
        function_name=function.attribute(resource, "function_name"),
        description=function.attribute(resource, "description"),
        handler=function.attribute(resource, "handler"),
        runtime=function.attribute(resource, "runtime"),
        architectures=tuple(function.attribute(resource, "architectures")),
        memory_size=int(function.attribute(resource, "memory_size")),
        timeout=int(function.attribute(resource, "timeout")),
        environment={k: str(v) for k, v in function.attribute(environment, "variables").items()},
        tracing_mode=function.attribute(tracing, "mode"),
        publish=bool(function.attribute(resource, "publish", False)),
        reserved_concurrency=int(function.attribute(resource, "reserved_concurrent_executions")),
        alias_name=function.attribute(alias, "name"),
        alias_description=function.attribute(alias, "description"),
        provisioned_concurrency=(
            int(function.attribute(provisioned, "provisioned_concurrent_executions"))
            if count
            else 0
        ),
        source_dir=(module.directory / function.attribute(archive, "source_dir")).resolve(),
        excludes=tuple(function.attribute(archive, "excludes", [])),
        log_group_name=function.attribute(log_group, "name"),
        log_retention_in_days=int(function.attribute(log_group, "retention_in_days")),
    )


@dataclass(frozen=True)
class StorageSettings:
    """The artifact bucket and its KMS key, as the storage module declares them."""

    bucket_name_prefix: str  # AWS appends a unique suffix (the bucket_prefix argument)
    kms_key_description: str
    kms_key_rotation: bool
    kms_alias_name: str


def storage_settings(path: Path = TFVARS, root: Path | None = None) -> StorageSettings:
    storage = root_module(path, root).child("storage")
    bucket = storage.block("resource", "aws_s3_bucket", "this")
    key = storage.block("resource", "aws_kms_key", "this")
    alias = storage.block("resource", "aws_kms_alias", "this")
    return StorageSettings(
        bucket_name_prefix=storage.attribute(bucket, "bucket_prefix"),
        kms_key_description=storage.attribute(key, "description"),
        kms_key_rotation=bool(storage.attribute(key, "enable_key_rotation", False)),
        kms_alias_name=storage.attribute(alias, "name"),
    )


def kms_key_policy(
    facts: Mapping[str, Any], path: Path = TFVARS, root: Path | None = None
) -> dict[str, Any]:
    """The bucket key's policy (``facts``: the account and partition)."""
    storage = root_module(path, root, facts).child("storage")
    return json.loads(storage.attribute(storage.block("resource", "aws_kms_key", "this"), "policy"))


@dataclass(frozen=True)
class Role:
    """One IAM role of the iam module; ``label`` is its resource name (``aws_iam_role.<label>``)."""

    label: str
    name: str
    description: str
    max_session_duration: int
    assume_role_policy: dict[str, Any]


@dataclass(frozen=True)
class RolePolicy:
    name: str
    role: str  # the role's name
    policy: dict[str, Any]


@dataclass(frozen=True)
class InstanceProfile:
    name: str
    role: str  # the role's name


def iam_roles(
    facts: Mapping[str, Any], path: Path = TFVARS, root: Path | None = None
) -> list[Role]:
    """The iam module's roles. Their trust policies name the account, partition and region:
    ``facts`` must hold ``data.aws_caller_identity.current.account_id``, ..."""
    iam = root_module(path, root, facts).child("iam")
    return [
        Role(
            label=block.labels[1],
            name=iam.attribute(block, "name"),
            description=iam.attribute(block, "description", ""),
            max_session_duration=int(iam.attribute(block, "max_session_duration", 3600)),
            assume_role_policy=json.loads(iam.attribute(block, "assume_role_policy")),
        )
        for block in iam.all("resource", "aws_iam_role")
    ]


def iam_role_policies(
    facts: Mapping[str, Any], path: Path = TFVARS, root: Path | None = None
) -> list[RolePolicy]:
    """The inline policies. They name the bucket and its key, so ``facts`` must also hold
    ``module.storage.aws_s3_bucket.this.arn`` and ``module.storage.aws_kms_key.this.arn``, and
    each role's ``module.iam.aws_iam_role.<label>.id``."""
    iam = root_module(path, root, facts).child("iam")
    return [
        RolePolicy(
            name=iam.attribute(block, "name"),
            role=iam.attribute(block, "role"),
            policy=json.loads(iam.attribute(block, "policy")),
        )
        for block in iam.all("resource", "aws_iam_role_policy")
    ]


def iam_instance_profiles(
    facts: Mapping[str, Any], path: Path = TFVARS, root: Path | None = None
) -> list[InstanceProfile]:
    """The instance profiles (``facts``: each role's ``module.iam.aws_iam_role.<label>.name``)."""
    iam = root_module(path, root, facts).child("iam")
    return [
        InstanceProfile(name=iam.attribute(block, "name"), role=iam.attribute(block, "role"))
        for block in iam.all("resource", "aws_iam_instance_profile")
    ]


def lambda_role_arn(facts: Mapping[str, Any], path: Path = TFVARS, root: Path | None = None) -> str:
    """The execution role the function is given (its ``role``: the iam module's role ARN, so
    ``facts`` must hold that role's ``module.iam.aws_iam_role.<label>.arn``)."""
    function = root_module(path, root, facts).child("lambda_function")
    return str(
        function.attribute(function.block("resource", "aws_lambda_function", "this"), "role")
    )


def outputs(
    facts: Mapping[str, Any], path: Path = TFVARS, root: Path | None = None
) -> dict[str, Any]:
    """The root module's outputs (outputs.tf) whose values ``facts`` determine, by name; an
    output only AWS could know (no fact for it) is left out."""
    module = root_module(path, root, facts)
    known: dict[str, Any] = {}
    for block in module.all("output"):
        try:
            known[block.labels[0]] = module.attribute(block, "value")
        except hcl.Unknown:
            continue
    return known
