"""Where `ops` commands act: the local cloud (default) or an AWS account.

This is the only place that knows the difference. A `Target` carries a boto3 session, the
endpoint URL (the local cloud's, or None for AWS) and the names of the infrastructure (bucket,
roles, ...): on AWS from Terraform's outputs, locally from a bootstrap that creates the same
resources in the local cloud. Everything downstream just calls ``target.client(service)``.
What else differs by target, `train_defaults` says: `ops train`'s profile and default data.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ops.config import REPO, TERRAFORM_ENV
from ops.errors import OpsError
from ops.profile import Profile

LOCAL_BUCKET = "dogops-local"
LOCAL_ROLE = "dogops-sagemaker-local"
TARGETS = ("local", "aws")

_SAGEMAKER_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@dataclass(frozen=True)
class TrainDefaults:
    """What `ops train` does on a target unless told otherwise."""

    profile: Profile
    data: Path | None  # trained on when no data is given (synthesised if missing); None: required


TRAIN_DEFAULTS = {
    # The quickstart: ~120 synthetic images on a laptop CPU, random weights (no download). At
    # 32 px a random frozen ResNet-18 separates the synthetic classes (hue and shape) better than
    # at 64 px, in a quarter of the time. Batches of 8-32 give 4-15 steps an epoch (512 gave
    # one: 8 steps in a run); the AdamW-trained head is unstable above 0.01. Every point of this
    # space reaches test accuracy >= 0.9: tests/ops/test_local_profile.py trains its corners.
    "local": TrainDefaults(
        Profile(
            arch="resnet18",
            weights="none",
            image_size=32,
            epochs=12,
            learning_rates=(0.001, 0.01),
            batch_sizes=(8, 16, 32),
        ),
        data=Path("data/synth"),
    ),
    # The real model: pretrained ResNet-50 at 224 px on the 6,680 training images.
    "aws": TrainDefaults(
        Profile(
            arch="resnet50",
            weights="imagenet",
            image_size=224,
            epochs=5,
            learning_rates=(0.001, 0.1),
            batch_sizes=(32, 64, 128, 256, 512),
        ),
        data=None,
    ),
}


def train_defaults(name: str) -> TrainDefaults:
    try:
        return TRAIN_DEFAULTS[name]
    except KeyError:
        raise OpsError(f"unknown target {name!r}; use one of {', '.join(TARGETS)}") from None


@dataclass
class Target:
    name: str
    session: boto3.Session
    endpoint_url: str | None
    bucket: str
    sagemaker_role_arn: str
    outputs: dict[str, object] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return self.session.region_name or "us-east-1"

    def client(self, service: str):
        return self.session.client(
            service,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )


def resolve(name: str, outputs_file: Path | None = None) -> Target:
    if name == "local":
        return _local()
    if name == "aws":
        return _aws(outputs_file)
    raise OpsError(f"unknown target {name!r}; use one of {', '.join(TARGETS)}")


def _local() -> Target:
    from ops.localcloud.bootstrap import read_outputs
    from ops.localcloud.control import require_running

    state = require_running()
    session = boto3.Session(
        aws_access_key_id="localcloud", aws_secret_access_key="localcloud", region_name="us-east-1"
    )
    # What `ops local up` bootstrapped from the tfvars, under Terraform's output names; a cloud
    # started with --no-bootstrap gets a bucket and role of its own, as before.
    outputs = read_outputs(Path(state.home) if state.home else None)
    bucket = str(outputs.get("s3_bucket_name") or LOCAL_BUCKET)
    target = Target("local", session, state.url, bucket, "")
    try:
        s3 = target.client("s3")
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError:
            s3.create_bucket(Bucket=bucket)
        iam = target.client("iam")
        role_name = str(outputs.get("sagemaker_role_arn") or LOCAL_ROLE).rsplit("/", 1)[-1]
        try:
            role = iam.get_role(RoleName=role_name)["Role"]
        except iam.exceptions.NoSuchEntityException:
            role = iam.create_role(
                RoleName=role_name, AssumeRolePolicyDocument=json.dumps(_SAGEMAKER_TRUST)
            )["Role"]
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"could not prepare the local cloud at {state.url}: {exc}") from exc
    target.sagemaker_role_arn = role["Arn"]
    target.outputs = {
        **outputs,
        "s3_bucket_name": bucket,
        "sagemaker_role_arn": role["Arn"],
        **_local_training_host(),
    }
    return target


def _local_training_host() -> dict[str, str]:
    """The local cloud's training host under the names of Terraform's outputs for the real one.
    Its folder ($DOGOPS_HOME/hosts/<id>/) is prepared as the user data prepares the real host:
    the project at <install_dir>, its virtual environment (the one `ops` runs from) at
    <install_dir>/.venv."""
    from ops.localcloud.control import home
    from ops.localcloud.ssm import host

    # Not checked here, so that commands other than `--on ec2` never depend on it: a Python
    # outside a virtual environment may lack bin/python, which the host's commands then report.
    install_dir, venv_dir = host.prepare(home(), REPO, Path(sys.prefix))
    return {
        "training_host_instance_id": host.TRAINING_HOST_ID,
        "training_host_install_dir": str(install_dir),
        "training_host_venv_dir": str(venv_dir),
    }


def load_outputs(outputs_file: Path | None = None) -> dict[str, object]:
    """Terraform outputs as {name: value}: from a saved ``terraform output -json`` file, else
    by running ``terraform output`` in terraform/envs/dev through python-terraform."""
    if outputs_file is not None:
        try:
            raw = json.loads(Path(outputs_file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise OpsError(f"cannot read Terraform outputs from {outputs_file}: {exc}") from exc
    else:
        try:
            from python_terraform import Terraform
        except ImportError as exc:
            raise OpsError("python-terraform is not installed; pass --outputs FILE") from exc
        try:
            raw = Terraform(working_dir=str(TERRAFORM_ENV)).output()
        except FileNotFoundError as exc:
            raise OpsError(
                "no terraform binary on PATH: run `terraform output -json > outputs.json` where "
                "Terraform is installed and pass --outputs outputs.json"
            ) from exc
        if not raw:
            raise OpsError(
                f"`terraform output` in {TERRAFORM_ENV} gave nothing: run `terraform apply` first "
                "or pass --outputs FILE"
            )
    if not isinstance(raw, dict):
        raise OpsError("Terraform outputs must be a JSON object (`terraform output -json`)")
    return {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in raw.items()}


def _aws(outputs_file: Path | None) -> Target:
    outputs = load_outputs(outputs_file)
    missing = [k for k in ("s3_bucket_name", "sagemaker_role_arn") if not outputs.get(k)]
    if missing:
        raise OpsError(f"Terraform outputs lack {', '.join(missing)}")
    region = (
        str(
            outputs.get("region")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or ""
        )
        or None
    )
    session = boto3.Session(region_name=region)
    try:
        if session.get_credentials() is None:
            raise NoCredentialsError()
    except NoCredentialsError as exc:
        raise OpsError("no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)") from exc
    return Target(
        "aws",
        session,
        os.environ.get("AWS_ENDPOINT_URL") or None,
        str(outputs["s3_bucket_name"]),
        str(outputs["sagemaker_role_arn"]),
        outputs,
    )
