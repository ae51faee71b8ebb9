"""Who a workload runs as (a training job, a Lambda execution environment): the AWS settings of
its processes, which point its SDK at the local cloud with its role's credentials."""

from __future__ import annotations

import os


def aws_environment(url: str, region: str, credentials: dict) -> dict[str, str]:
    """The local cloud's front door, the region and the role's credentials (STS
    ``Credentials``). No config or credentials file is read, as none is in a training container
    or a Lambda environment: the user's ``~/.aws`` could name other endpoints."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        # Never ask the instance metadata service (169.254.169.254) for either.
        "AWS_EC2_METADATA_DISABLED": "true",
    }
