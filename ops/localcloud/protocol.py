"""Wire-level helpers for the AWS JSON protocol as the local cloud speaks it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_REGION = "us-east-1"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


class AwsError(Exception):
    """An error answered the way AWS answers it: HTTP status, error code, message."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def body(self) -> dict:
        return {"__type": self.code, "message": self.message}


def validation_error(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def not_found(message: str) -> AwsError:
    # SageMaker answers Describe/Stop on unknown names with a ValidationException.
    return AwsError("ValidationException", message)


def region_of(authorization: str | None) -> str:
    """The region from a SigV4 Authorization header's credential scope."""
    match = _CREDENTIAL_SCOPE.search(authorization or "")
    return match.group(1) if match else DEFAULT_REGION


def now() -> datetime:
    return datetime.now(UTC)


def to_wire(value: object) -> object:
    """datetimes become epoch seconds (the JSON protocol's timestamp form), recursively."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    return value


def sagemaker_arn(region: str, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:{kind}/{name.lower()}"
