"""Create in the local cloud what Terraform declares for AWS (`ops local up` runs it).

Client side only, like `control`: it imports nothing of the server and talks to the local cloud
with boto3, through the environment `control.client_environment` gives, as Terraform talks to
AWS. Every name and number comes from terraform/ through `ops.config`; facts AWS would compute
(the account, ARNs, the bucket's name) are added as each resource is made, so that the next
module's expressions (a role's trust policy naming the function's ARN) can be evaluated. They are
keyed by the resource's full address, module path included (``module.iam.aws_iam_role.lambda.arn``:
every module may have its ``this``); the account, partition and region are the provider's, given
once for every module's data sources (see `ops.hcl`).

What it creates, in Terraform's order, each step idempotent (an existing resource is compared
and updated only where it differs, as `terraform apply` would):

- storage: the bucket's KMS key (description, rotation, key policy) and its alias, then the
  bucket. AWS names the bucket ``<bucket_prefix><unique suffix>``; locally the suffix is fixed,
  ``local``, so every bootstrap of the same tfvars finds the same bucket (and a restarted local
  cloud, which keeps S3, still has it). Its sub-resources (versioning, lifecycle, encryption
  configuration, public access block, bucket policy) are not made: the local cloud enforces
  none of them.
- iam: every role with its trust policy, its inline policies, the instance profile.
- lambda_function: the log group with its retention; the function zipped from its source
  folder with the archive's excludes (a deterministic zip: same files, same sha256); a new
  version published when $LATEST's code (CodeSha256) or configuration differs from the newest
  published version's, whichever run changed $LATEST (an earlier one may have failed before
  publishing); the alias moved to the version matching $LATEST when it points elsewhere;
  reserved concurrency (PutFunctionConcurrency); provisioned concurrency on the alias
  (PutProvisionedConcurrencyConfig, asynchronous: IN_PROGRESS, then READY; waited for only
  when asked), or no config when the module's count is 0.

The root module's outputs (outputs.tf) that these facts determine are written to
``$DOGOPS_HOME/terraform-outputs.json`` in ``terraform output -json``'s shape: the local
counterpart of Terraform's outputs, which `ops.target` reads for the local target as it reads
Terraform's for AWS.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ops import config, hcl
from ops.errors import OpsError
from ops.jsonfile import write_atomic
from ops.localcloud import control

OUTPUTS_FILE = "terraform-outputs.json"
LOCAL_BUCKET_SUFFIX = "local"  # stands for the unique suffix AWS appends to bucket_prefix
# The root module's calls (terraform/envs/dev/main.tf): the module paths of the facts.
STORAGE, IAM, LAMBDA = "module.storage", "module.iam", "module.lambda_function"
# The region S3 creates a bucket in without a CreateBucketConfiguration.
S3_DEFAULT_REGION = "us-east-1"
PARTITION = "aws"
PROVISIONED_WAIT_S = 300.0
# A fixed timestamp for every zip entry, so the same files give the same sha256 (ZIP's epoch).
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class Step:
    """What one step changed ("created", "100 -> 5"), and what it found ("IN_PROGRESS")."""

    what: str
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def append(self, change: str) -> None:
        self.changes.append(change)

    @property
    def line(self) -> str:
        return ", ".join(self.changes + self.notes) or "unchanged"


@dataclass
class Report:
    """What one bootstrap did, step by step, and the outputs it wrote."""

    steps: list[Step] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    outputs_file: Path | None = None

    @property
    def changed(self) -> list[str]:
        """The steps that changed the cloud (none on a second run over the same tfvars)."""
        return [s.what for s in self.steps if s.changes]


def outputs_path(home: Path | None = None) -> Path:
    return (home or control.home()) / OUTPUTS_FILE


def read_outputs(home: Path | None = None) -> dict[str, Any]:
    """The outputs the last bootstrap wrote, as {name: value}; {} when there are none."""
    try:
        document = json.loads(outputs_path(home).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {name: entry["value"] for name, entry in document.items()}


def local_bucket_name(prefix: str) -> str:
    return prefix + LOCAL_BUCKET_SUFFIX


def archive(source_dir: Path, excludes: tuple[str, ...]) -> bytes:
    """The deployment package: ``source_dir``'s files (minus ``excludes``, glob patterns on
    paths relative to it, ``**`` crossing folders, as the archive_file data source takes them)
    in a zip whose bytes depend on the files alone."""
    if not source_dir.is_dir():
        raise OpsError(f"the function's source folder {source_dir} does not exist")
    patterns = [_glob(p) for p in excludes]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for path in sorted(source_dir.rglob("*")):
            relative = path.relative_to(source_dir).as_posix()
            if path.is_dir() or _excluded(relative, patterns):
                continue
            info = zipfile.ZipInfo(relative, date_time=_ZIP_TIME)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            package.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _glob(pattern: str) -> re.Pattern:
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex + r"\Z")


def _excluded(relative: str, patterns: list[re.Pattern]) -> bool:
    """A file is left out when it, or a folder it is in, matches a pattern."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(p.match(c) for p in patterns for c in candidates)


def code_sha256(package: bytes) -> str:
    """Lambda's CodeSha256: the base64 of the package's SHA-256."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()


class Bootstrap:
    """One run against the local cloud at ``url``, from the tfvars at ``tfvars`` (and the
    Terraform root ``root``; see `config.terraform_root`)."""

    def __init__(
        self,
        url: str,
        tfvars: Path = config.TFVARS,
        root: Path | None = None,
        home: Path | None = None,
        progress: Callable[[str], None] | None = None,
        wait_provisioned: bool = False,
    ):
        self.url = url
        self.tfvars = Path(tfvars)
        self.root = config.terraform_root(self.tfvars, root)
        self.home = home
        self.progress = progress or (lambda line: None)
        self.wait_provisioned = wait_provisioned
        self.report = Report()
        self.facts: dict[str, Any] = {}
        environment = control.client_environment(url)
        self.session = boto3.Session(
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            region_name=config.region(self.tfvars, self.root),
        )
        self._clients: dict[str, Any] = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service,
                endpoint_url=self.url,
                config=Config(retries={"max_attempts": 3, "mode": "standard"}),
            )
        return self._clients[service]

    def fact(self, module: str, address: str, value: Any) -> None:
        """Record what AWS computed for ``address`` (``aws_iam_role.lambda.arn``) in ``module``."""
        self.facts[hcl.fact_address(module, address)] = value

    @contextmanager
    def step(self, what: str) -> Iterator[Step]:
        """One step: ``what`` names it in the progress line and in the error that stops it.
        The body appends what it changed ("created", "updated MemorySize", ...)."""
        done = Step(what)
        try:
            yield done
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise OpsError(
                f"bootstrap: {what}: {exc.operation_name} was refused: "
                f"{error.get('Code', '?')}: {error.get('Message', exc)}"
            ) from exc
        except BotoCoreError as exc:
            raise OpsError(f"bootstrap: {what}: {exc}") from exc
        except OpsError as exc:
            raise OpsError(f"bootstrap: {what}: {exc}") from exc
        self.report.steps.append(done)
        self.progress(f"{what}: {done.line}")

    def run(self) -> Report:
        try:
            self.account()
            self.storage()
            self.iam()
            self.function()
            self.record_outputs()
        except hcl.HclError as exc:  # read outside a step: the Terraform files themselves
            raise OpsError(f"bootstrap: {exc}") from exc
        return self.report

    # -- facts ---------------------------------------------------------------------------

    def account(self) -> None:
        with self.step("account") as done:
            identity = self.client("sts").get_caller_identity()
            self.facts.update(
                {
                    "data.aws_caller_identity.current.account_id": identity["Account"],
                    "data.aws_partition.current.partition": PARTITION,
                    "data.aws_region.current.region": self.session.region_name,
                }
            )
            done.notes.append(f"{identity['Account']} in {self.session.region_name}")

    # -- storage ---------------------------------------------------------------------------

    def storage(self) -> None:
        settings = config.storage_settings(self.tfvars, self.root)
        key_policy = config.kms_key_policy(self.facts, self.tfvars, self.root)
        kms = self.client("kms")
        with self.step(f"KMS key {settings.kms_alias_name}") as done:
            aliases = (
                alias
                for page in kms.get_paginator("list_aliases").paginate()
                for alias in page["Aliases"]
            )
            key_id = next(
                (a["TargetKeyId"] for a in aliases if a["AliasName"] == settings.kms_alias_name),
                None,
            )
            if key_id is None:
                key_id = kms.create_key(
                    Description=settings.kms_key_description, Policy=json.dumps(key_policy)
                )["KeyMetadata"]["KeyId"]
                kms.create_alias(AliasName=settings.kms_alias_name, TargetKeyId=key_id)
                done.append("created")
            key = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            if key.get("Description") != settings.kms_key_description:
                kms.update_key_description(KeyId=key_id, Description=settings.kms_key_description)
                done.append("updated description")
            current_policy = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
            if _document(current_policy) != key_policy:
                kms.put_key_policy(
                    KeyId=key_id, PolicyName="default", Policy=json.dumps(key_policy)
                )
                done.append("updated key policy")
            if (
                settings.kms_key_rotation
                and not kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]
            ):
                kms.enable_key_rotation(KeyId=key_id)
                done.append("rotation enabled")
            self.fact(STORAGE, "aws_kms_key.this.arn", key["Arn"])
            self.fact(STORAGE, "aws_kms_key.this.key_id", key_id)
        bucket = local_bucket_name(settings.bucket_name_prefix)
        s3 = self.client("s3")
        with self.step(f"bucket {bucket}") as done:
            try:
                s3.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                    raise
                region = self.session.region_name
                # Outside us-east-1, CreateBucket must name the region it is sent to, or S3
                # refuses it (IllegalLocationConstraintException); in us-east-1 it must not
                # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html).
                where = (
                    {}
                    if region == S3_DEFAULT_REGION
                    else {"CreateBucketConfiguration": {"LocationConstraint": region}}
                )
                s3.create_bucket(Bucket=bucket, **where)
                done.append("created")
            for attribute, value in (
                ("id", bucket),
                ("bucket", bucket),
                ("arn", f"arn:{PARTITION}:s3:::{bucket}"),
                ("region", self.session.region_name),
            ):
                self.fact(STORAGE, f"aws_s3_bucket.this.{attribute}", value)

    # -- iam -------------------------------------------------------------------------------

    def iam(self) -> None:
        iam = self.client("iam")
        roles = config.iam_roles(self.facts, self.tfvars, self.root)
        for role in roles:
            trust = json.dumps(role.assume_role_policy)
            with self.step(f"role {role.name}") as done:
                try:
                    found = iam.get_role(RoleName=role.name)["Role"]
                except iam.exceptions.NoSuchEntityException:
                    found = iam.create_role(
                        RoleName=role.name,
                        AssumeRolePolicyDocument=trust,
                        Description=role.description,
                        MaxSessionDuration=role.max_session_duration,
                    )["Role"]
                    done.append("created")
                else:
                    if _document(found["AssumeRolePolicyDocument"]) != role.assume_role_policy:
                        iam.update_assume_role_policy(RoleName=role.name, PolicyDocument=trust)
                        done.append("updated trust policy")
                    if (
                        found.get("Description", "") != role.description
                        or found.get("MaxSessionDuration") != role.max_session_duration
                    ):
                        iam.update_role(
                            RoleName=role.name,
                            Description=role.description,
                            MaxSessionDuration=role.max_session_duration,
                        )
                        done.append("updated description")
                for attribute, value in (
                    ("id", role.name),
                    ("name", role.name),
                    ("arn", found["Arn"]),
                    ("unique_id", found.get("RoleId")),
                ):
                    self.fact(IAM, f"aws_iam_role.{role.label}.{attribute}", value)
        for policy in config.iam_role_policies(self.facts, self.tfvars, self.root):
            with self.step(f"inline policy {policy.name} of {policy.role}") as done:
                try:
                    current = iam.get_role_policy(RoleName=policy.role, PolicyName=policy.name)
                    differs = _document(current["PolicyDocument"]) != policy.policy
                except iam.exceptions.NoSuchEntityException:
                    differs = True
                if differs:
                    iam.put_role_policy(
                        RoleName=policy.role,
                        PolicyName=policy.name,
                        PolicyDocument=json.dumps(policy.policy),
                    )
                    done.append("put")
        for profile in config.iam_instance_profiles(self.facts, self.tfvars, self.root):
            with self.step(f"instance profile {profile.name}") as done:
                try:
                    found = iam.get_instance_profile(InstanceProfileName=profile.name)[
                        "InstanceProfile"
                    ]
                except iam.exceptions.NoSuchEntityException:
                    found = iam.create_instance_profile(InstanceProfileName=profile.name)[
                        "InstanceProfile"
                    ]
                    done.append("created")
                names = [r["RoleName"] for r in found.get("Roles", [])]
                if profile.role not in names:
                    for name in names:  # a profile holds one role
                        iam.remove_role_from_instance_profile(
                            InstanceProfileName=profile.name, RoleName=name
                        )
                    iam.add_role_to_instance_profile(
                        InstanceProfileName=profile.name, RoleName=profile.role
                    )
                    done.append(f"role {profile.role}")

    # -- lambda_function ---------------------------------------------------------------------

    def function(self) -> None:
        settings = config.lambda_settings(self.tfvars, self.root)
        self.log_group(settings)
        role_arn = config.lambda_role_arn(self.facts, self.tfvars, self.root)
        lam = self.client("lambda")
        package = archive(settings.source_dir, settings.excludes)
        sha = code_sha256(package)
        wanted = {
            "Role": role_arn,
            "Handler": settings.handler,
            "Runtime": settings.runtime,
            "Description": settings.description,
            "Timeout": settings.timeout,
            "MemorySize": settings.memory_size,
            "Environment": {"Variables": dict(settings.environment)},
            "TracingConfig": {"Mode": settings.tracing_mode},
        }
        name = settings.function_name
        with self.step(f"function {name}") as done:
            try:
                current = lam.get_function(FunctionName=name)["Configuration"]
            except lam.exceptions.ResourceNotFoundException:
                current = lam.create_function(
                    FunctionName=name,
                    Code={"ZipFile": package},
                    Architectures=list(settings.architectures),
                    **wanted,
                )
                done.append(f"created ({len(package)} bytes, sha256 {sha})")
            else:
                differing = [k for k, v in wanted.items() if _configuration(current, k) != v]
                if differing:
                    lam.update_function_configuration(FunctionName=name, **wanted)
                    done.append(f"updated {', '.join(differing)}")
                if current.get("CodeSha256") != sha:
                    lam.update_function_code(FunctionName=name, ZipFile=package)
                    done.append(f"new code (sha256 {sha})")
            self.fact(LAMBDA, "aws_lambda_function.this.arn", current["FunctionArn"].split(":$")[0])
            self.fact(LAMBDA, "aws_lambda_function.this.function_name", name)
        version = self.version(settings, [*wanted, "Architectures"])
        self.alias(settings, version)
        self.reserved(settings)
        self.provisioned(settings)

    def log_group(self, settings: config.LambdaSettings) -> None:
        logs = self.client("logs")
        name = settings.log_group_name
        with self.step(f"log group {name}") as done:
            groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
            found = next((g for g in groups if g["logGroupName"] == name), None)
            if found is None:
                logs.create_log_group(logGroupName=name)
                done.append("created")
            if (found or {}).get("retentionInDays") != settings.log_retention_in_days:
                logs.put_retention_policy(
                    logGroupName=name, retentionInDays=settings.log_retention_in_days
                )
                done.append(f"retention {settings.log_retention_in_days} days")

    def version(self, settings: config.LambdaSettings, keys: list[str]) -> str:
        """The version the alias points at (Terraform's ``publish = true``): a new one when
        $LATEST's code or configuration (``keys``) differs from the newest published version's,
        else the newest published. $LATEST is compared, not what this run changed: an earlier
        run may have updated it and failed before PublishVersion."""
        lam = self.client("lambda")
        name = settings.function_name
        with self.step(f"version of {name}") as done:
            versions = [
                v
                for page in lam.get_paginator("list_versions_by_function").paginate(
                    FunctionName=name
                )
                for v in page["Versions"]
            ]
            latest = next(v for v in versions if v["Version"] == "$LATEST")
            published = [v for v in versions if v["Version"].isdigit()]
            newest = max(published, key=lambda v: int(v["Version"]), default=None)
            differing = [
                k
                for k in ["CodeSha256", *keys]
                if newest is not None and _configuration(latest, k) != _configuration(newest, k)
            ]
            if settings.publish and (newest is None or differing):
                _wait_updated(lam, name)
                version = lam.publish_version(FunctionName=name)["Version"]
                done.append(f"published {version}")
                if differing:
                    done.notes.append(
                        f"$LATEST's {', '.join(differing)} differed from {newest['Version']}'s"
                    )
            elif newest is not None:
                version = newest["Version"]
                done.notes.append(f"still {version}")
            else:
                version = "$LATEST"
            self.fact(LAMBDA, "aws_lambda_function.this.version", version)
        return version

    def alias(self, settings: config.LambdaSettings, version: str) -> None:
        lam = self.client("lambda")
        name, alias = settings.function_name, settings.alias_name
        wanted = {
            "FunctionName": name,
            "Name": alias,
            "FunctionVersion": version,
            "Description": settings.alias_description,
        }
        with self.step(f"alias {name}:{alias}") as done:
            try:
                current = lam.get_alias(FunctionName=name, Name=alias)
            except lam.exceptions.ResourceNotFoundException:
                current = lam.create_alias(**wanted)
                done.append(f"created on version {version}")
            else:
                if (
                    current["FunctionVersion"] != version
                    or current.get("Description", "") != settings.alias_description
                ):
                    current = lam.update_alias(**wanted)
                    done.append(f"moved to version {version}")
            self.fact(LAMBDA, "aws_lambda_alias.this.arn", current["AliasArn"])
            self.fact(LAMBDA, "aws_lambda_alias.this.name", alias)

    def reserved(self, settings: config.LambdaSettings) -> None:
        lam = self.client("lambda")
        name, wanted = settings.function_name, settings.reserved_concurrency
        with self.step(f"reserved concurrency of {name}") as done:
            current = lam.get_function_concurrency(FunctionName=name).get(
                "ReservedConcurrentExecutions"
            )
            if current != wanted:
                lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=wanted)
                done.append(f"{current} -> {wanted}")

    def provisioned(self, settings: config.LambdaSettings) -> None:
        lam = self.client("lambda")
        name, alias = settings.function_name, settings.alias_name
        wanted = settings.provisioned_concurrency
        with self.step(f"provisioned concurrency of {name}:{alias}") as done:
            try:
                current = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=alias)
            except lam.exceptions.ProvisionedConcurrencyConfigNotFoundException:
                current = None
            if wanted == 0:
                if current is not None:
                    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=alias)
                    done.append("deleted (the module's count is 0)")
                return
            requested = (current or {}).get("RequestedProvisionedConcurrentExecutions")
            if requested != wanted:
                current = lam.put_provisioned_concurrency_config(
                    FunctionName=name, Qualifier=alias, ProvisionedConcurrentExecutions=wanted
                )
                done.append(f"{requested} -> {wanted}")
            if self.wait_provisioned:
                current = self._wait_ready(name, alias)
            done.notes.append(f"status {current.get('Status', '?')}")

    def _wait_ready(self, name: str, alias: str) -> dict:
        lam = self.client("lambda")
        deadline = time.monotonic() + PROVISIONED_WAIT_S
        while True:
            current = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=alias)
            if current["Status"] == "READY":
                return current
            if current["Status"] == "FAILED":
                raise OpsError(f"provisioned concurrency FAILED: {current.get('StatusReason')}")
            if time.monotonic() > deadline:
                raise OpsError(
                    f"provisioned concurrency still {current['Status']} after "
                    f"{PROVISIONED_WAIT_S:.0f} s"
                )
            time.sleep(0.2)

    # -- outputs -----------------------------------------------------------------------------

    def record_outputs(self) -> None:
        outputs = config.outputs(self.facts, self.tfvars, self.root)
        path = outputs_path(self.home)
        with self.step("outputs") as done:
            write_atomic(
                path,
                {k: {"value": v, "sensitive": False} for k, v in outputs.items()},
                indent=2,
            )
            done.notes.append(f"{len(outputs)} written to {path}")
        self.report.outputs = outputs
        self.report.outputs_file = path


def _document(value: Any) -> Any:
    """A policy document as IAM or KMS returns it (a dict from boto3, or JSON text, which IAM
    URL-encodes)."""

    return json.loads(unquote(value)) if isinstance(value, str) else value


def _configuration(current: dict, key: str) -> Any:
    value = current.get(key)
    if key == "Environment":
        return {"Variables": (value or {}).get("Variables", {})}
    if key == "Description":
        return value or ""
    return value


def _wait_updated(lam, name: str) -> None:
    """PublishVersion is refused while an update is in progress (LastUpdateStatus)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = lam.get_function_configuration(FunctionName=name).get("LastUpdateStatus")
        if status in (None, "Successful"):
            return
        if status == "Failed":
            raise OpsError(f"the update of {name} failed")
        time.sleep(0.1)
    raise OpsError(f"{name} is still updating after 60 s")


def wait_answering(url: str, timeout: float = control.START_TIMEOUT_S) -> None:
    """Wait until the local cloud at ``url`` answers its health check (a foreground `ops local
    up` bootstraps beside the server it is starting)."""
    deadline = time.monotonic() + timeout
    while control.health(url) is None:
        if time.monotonic() > deadline:
            raise OpsError(f"bootstrap: {url} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def run(
    url: str,
    tfvars: Path = config.TFVARS,
    root: Path | None = None,
    home: Path | None = None,
    progress: Callable[[str], None] | None = None,
    wait_provisioned: bool = False,
) -> Report:
    """Bootstrap the local cloud at ``url`` from the tfvars (see the module's docstring)."""
    return Bootstrap(url, tfvars, root, home, progress, wait_provisioned).run()
