"""What an Invoke's answer means for the load test: success, or which kind of failure.

Plain functions over botocore's parsed answers (no Locust), so they are tested directly:

- `Throttled`: HTTP 429 ``TooManyRequestsException`` (the function is at its concurrency
  limit), with Lambda's Reason;
- `FunctionError`: the call ran but the function failed (the ``X-Amz-Function-Error``
  header: an unhandled exception, a timeout), with the error type;
- `HandlerError`: the function answered, with a ``statusCode`` other than 200 (the handler's
  own 4xx/5xx, e.g. 502 when the endpoint failed).

Messages lose request ids, so Locust's failure table groups like failures together.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import ClientError

_REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


class Throttled(Exception):
    """429 TooManyRequestsException."""


class FunctionError(Exception):
    """The invocation ran and the function failed (X-Amz-Function-Error)."""


class HandlerError(Exception):
    """The function answered a statusCode other than 200."""


def outcome(response: dict[str, Any], body: bytes) -> Exception | None:
    """The failure an Invoke answer stands for, or None for a success."""
    if response.get("FunctionError"):
        try:
            document = json.loads(body)
            kind = document.get("errorType") or "error"
            message = str(document.get("errorMessage") or "")
        except (ValueError, AttributeError):
            kind, message = "error", body[:200].decode(errors="replace")
        message = _REQUEST_ID.sub("<id>", message)[:200]
        return FunctionError(f"{response['FunctionError']}: {kind}: {message}")
    try:
        document = json.loads(body)
    except ValueError:
        return None
    status = document.get("statusCode") if isinstance(document, dict) else None
    if status is None or status == 200:
        return None
    detail = ""
    try:
        error = json.loads(document.get("body") or "{}")
        detail = str(error.get("error") or "") if isinstance(error, dict) else ""
    except (TypeError, ValueError):
        pass
    return HandlerError(f"HTTP {status}: {_REQUEST_ID.sub('<id>', detail)[:200]}".rstrip(": "))


def throttle(exc: ClientError) -> Throttled | None:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if error.get("Code") != "TooManyRequestsException" and status != 429:
        return None
    # Lambda's Reason (ReservedFunctionConcurrentInvocationLimitExceeded, ...) is a member of
    # the error shape, which botocore puts beside "Error".
    return Throttled(exc.response.get("Reason") or error.get("Message") or "429")
