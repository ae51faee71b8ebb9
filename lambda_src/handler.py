"""Lambda function that fronts the SageMaker endpoint.

Events it accepts:

- the original project's direct invocation: ``{"url": "https://...", "top_k": 3}``;
- an API Gateway (REST or HTTP API) or Function URL event whose ``body`` is either that JSON or an
  image (``image/jpeg``, ``image/png``, ``application/x-image``), base64 encoded as API Gateway
  and Function URLs deliver binary bodies (``isBase64Encoded: true``).

It answers ``{"statusCode", "headers", "body"}``: on success the endpoint's JSON unchanged, on
failure ``{"error": message, "request_id": id}`` with a status that says whose fault it was:
400/413/415 for the caller's input (also when the model rejects it), 429 when SageMaker
throttles, 502/503/504 when the endpoint fails, is not ready or is too slow, 500 when the
function itself is misconfigured, and 500 ``internal error`` for anything unexpected (never an
unhandled exception). Callers get our own messages: AWS error texts (which carry account ids and
ARNs) go to the log only. Every call writes one JSON log line with the request id; URLs in it
lose their query string and user info (presigned URLs carry signatures).

The endpoint call gives up in time to answer 504 before Lambda kills the function: at most
``ENDPOINT_MAX_ATTEMPTS`` x (``ENDPOINT_CONNECT_TIMEOUT_S`` + ``ENDPOINT_READ_TIMEOUT_S``) plus
one backoff between attempts, 2 x (2 + 25) + 1 = 55 s by default, under the 65 s function
timeout that Terraform sets (`endpoint_time_budget_s`; a test checks the two agree).

Settings (environment): ``ENDPOINT_NAME`` (required), ``MAX_BODY_BYTES`` (default 6 MiB, the
synchronous Lambda and SageMaker payload limit), the three ``ENDPOINT_*`` timings above,
``LOG_LEVEL``. Only the standard library and the boto3 that the Lambda Python runtime provides
are used.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

IMAGE_CONTENT_TYPES = frozenset({"image/jpeg", "image/png", "application/x-image"})
JSON_CONTENT_TYPE = "application/json"
REQUEST_KEYS = frozenset({"url", "top_k", "include_logits"})
MAX_URL_LENGTH = 2048
MAX_TOP_K = 1000
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
# botocore's standard retry mode sleeps random() * 2 ** (attempt - 1) s, capped at 20 s.
DEFAULT_CONNECT_TIMEOUT_S = 2
DEFAULT_READ_TIMEOUT_S = 25
DEFAULT_MAX_ATTEMPTS = 2

# SageMaker runtime error code -> the status the caller gets.
_ENDPOINT_ERRORS = {
    "ThrottlingException": 429,
    "ModelNotReadyException": 503,
    "ServiceUnavailable": 503,
    "InternalDependencyException": 502,
    "InternalFailure": 502,
    "ValidationError": 502,  # e.g. the endpoint does not exist: our configuration, not the caller
}
# What callers are told for each: AWS's own texts name accounts, roles and endpoints.
_ENDPOINT_MESSAGES = {
    429: "the model endpoint is throttling requests; retry with backoff",
    503: "the model endpoint is not ready; retry later",
    502: "the model endpoint failed",
    500: "the function cannot call the model endpoint",
}
_URL_USERINFO = re.compile(r"(?i)\b(https?://)[^/\s\"'@]*@")
_URL_QUERY = re.compile(r"(?i)(\bhttps?://[^\s\"'?#]*)[?#][^\s\"']*")

LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}

_client = None


def _timing(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise _Misconfigured(f"{name} is not an integer: {raw[:40]!r}") from None
    if value < 1:
        raise _Misconfigured(f"{name} must be at least 1, got {value}")
    return value


def endpoint_timings() -> tuple[int, int, int]:
    """(connect timeout s, read timeout s, attempts) for the endpoint call."""
    return (
        _timing("ENDPOINT_CONNECT_TIMEOUT_S", DEFAULT_CONNECT_TIMEOUT_S),
        _timing("ENDPOINT_READ_TIMEOUT_S", DEFAULT_READ_TIMEOUT_S),
        _timing("ENDPOINT_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS),
    )


def endpoint_time_budget_s(connect: int, read: int, attempts: int) -> float:
    """The longest the endpoint call can take: every attempt timing out, with the standard
    retry mode's backoff (at most 2 ** (n - 1) s before attempt n + 1) between them."""
    backoff = sum(min(2 ** (n - 1), 20) for n in range(1, attempts))
    return attempts * (connect + read) + backoff


def runtime_client():
    """The sagemaker-runtime client, created once per execution environment and reused.

    Retries are botocore's standard mode (throttles and transient errors are retried with backoff)
    and every timeout is bounded so that the whole call ends before the function's own timeout.
    """
    global _client
    if _client is None:
        connect, read, attempts = endpoint_timings()
        _client = boto3.client(
            "sagemaker-runtime",
            config=Config(
                # total_max_attempts counts the first call; "max_attempts" would count retries.
                retries={"total_max_attempts": attempts, "mode": "standard"},
                connect_timeout=connect,
                read_timeout=read,
            ),
        )
    return _client


class BadRequest(Exception):
    def __init__(self, message: str, status_code: int = 400):
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class EndpointRequest:
    content_type: str
    body: bytes


def handler(event: Any, context: Any) -> dict[str, Any]:
    request_id = getattr(context, "aws_request_id", None) or "-"
    started = time.perf_counter()
    log = {"request_id": request_id}
    try:
        endpoint = os.environ.get("ENDPOINT_NAME", "").strip()
        if not endpoint:
            raise _Misconfigured("ENDPOINT_NAME is not set")
        log["endpoint"] = endpoint
        request = parse_event(event, max_body_bytes())
        log["content_type"] = request.content_type
        log["request_bytes"] = len(request.body)
        response = runtime_client().invoke_endpoint(
            EndpointName=endpoint,
            ContentType=request.content_type,
            Accept=JSON_CONTENT_TYPE,
            Body=request.body,
        )
        result = _respond(200, response["Body"].read(), request_id)
        error = None
    except BadRequest as exc:
        error = exc.status_code, str(exc)
    except _Misconfigured as exc:
        error = 500, f"function misconfigured: {exc}"
    except ClientError as exc:
        error = _endpoint_error(exc)
        aws = exc.response.get("Error", {})
        log["aws_error"] = aws.get("Code")
        log["aws_message"] = redact_urls(str(aws.get("Message") or ""))[:1000]
    except (ConnectTimeoutError, ReadTimeoutError) as exc:
        error = 504, "the model endpoint did not answer in time"
        log["aws_error"] = type(exc).__name__
    except BotoCoreError as exc:
        error = 502, "could not reach the model endpoint"
        log["aws_error"] = type(exc).__name__
        log["aws_message"] = redact_urls(str(exc))[:1000]
    except Exception as exc:  # a bug of ours: never an unhandled error, never its text
        error = 500, "internal error"
        log["exception"] = type(exc).__name__
    if error is not None:
        result = _error(*error, request_id)
        log["error"] = error[1]
    log["status"] = result["statusCode"]
    log["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    _log("ERROR" if result["statusCode"] >= 500 else "INFO", "invoke", log)
    return result


class _Misconfigured(Exception):
    pass


def max_body_bytes() -> int:
    raw = os.environ.get("MAX_BODY_BYTES", "")
    try:
        return int(raw) if raw else DEFAULT_MAX_BODY_BYTES
    except ValueError:
        raise _Misconfigured(f"MAX_BODY_BYTES is not an integer: {raw!r}") from None


def redact_urls(text: str) -> str:
    """``text`` with every URL's user info and query string removed."""
    return _URL_QUERY.sub(r"\1", _URL_USERINFO.sub(r"\1", text))


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what} contains invalid Unicode (a lone surrogate)") from None


def _load_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except UnicodeDecodeError:
        raise BadRequest("body is not valid JSON: not UTF-8") from None
    except RecursionError:
        raise BadRequest("body is not valid JSON: nested too deeply") from None
    except ValueError:  # integers beyond Python's digit limit
        raise BadRequest("body is not valid JSON: a number is too large") from None


def parse_event(event: Any, limit: int) -> EndpointRequest:
    """Turn a direct or HTTP-style event into the request the endpoint gets, or `BadRequest`."""
    if not isinstance(event, dict):
        raise BadRequest(f"event must be a JSON object, got {type(event).__name__}")
    if "body" not in event:
        return _json_request(event)
    body = event["body"]
    if body is None or body == "":
        raise BadRequest("request body is empty")
    if not isinstance(body, str):
        raise BadRequest("request body must be a string")
    if len(body) > limit * 4 // 3 + 4:
        raise BadRequest(f"request body is larger than {limit} bytes", 413)
    content_type = _content_type(event.get("headers")) or JSON_CONTENT_TYPE
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("body is marked base64 but is not valid base64") from None
    else:
        raw = _utf8(body, "request body")
    if len(raw) > limit:
        raise BadRequest(f"request body is larger than {limit} bytes", 413)
    if content_type in IMAGE_CONTENT_TYPES:
        if not event.get("isBase64Encoded"):
            raise BadRequest("image bodies must be base64 encoded (isBase64Encoded: true)")
        return EndpointRequest(content_type, raw)
    if content_type != JSON_CONTENT_TYPE:
        allowed = ", ".join(sorted({JSON_CONTENT_TYPE, *IMAGE_CONTENT_TYPES}))
        raise BadRequest(f"unsupported content type {content_type!r}; use one of {allowed}", 415)
    return _json_request(_load_json(raw))


def _json_request(document: Any) -> EndpointRequest:
    if not isinstance(document, dict):
        raise BadRequest('request must be a JSON object like {"url": "https://..."}')
    unknown = sorted(str(key)[:64] for key in set(document) - REQUEST_KEYS)
    if unknown:
        for key in unknown:
            _utf8(key, "a field name")
        raise BadRequest(f"unknown field(s) {unknown[:10]}; allowed: {sorted(REQUEST_KEYS)}")
    url = document.get("url")
    if url is None:
        raise BadRequest('missing "url": send {"url": "https://..."} or an image body')
    if not isinstance(url, str) or not url.strip():
        raise BadRequest('"url" must be a non-empty string')
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f'"url" is longer than {MAX_URL_LENGTH} characters')
    _utf8(url, '"url"')
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise BadRequest('"url" is malformed (check the host and the port)') from None
    if parts.scheme not in ("http", "https") or not host:
        raise BadRequest('"url" must be an http(s) URL with a host')
    top_k = document.get("top_k")
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K
    ):
        raise BadRequest(f'"top_k" must be an integer from 1 to {MAX_TOP_K}')
    include_logits = document.get("include_logits")
    if include_logits is not None and not isinstance(include_logits, bool):
        raise BadRequest('"include_logits" must be true or false')
    clean = {key: document[key] for key in ("url", "top_k", "include_logits") if key in document}
    return EndpointRequest(JSON_CONTENT_TYPE, json.dumps(clean).encode("utf-8"))


def _content_type(headers: Any) -> str | None:
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == "content-type" and isinstance(value, str):
            return value.split(";", 1)[0].strip().lower() or None
    return None


def _endpoint_error(exc: ClientError) -> tuple[int, str]:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    message = error.get("Message", "") or code
    if code == "ModelError":
        # The model answered with an error status; a 4xx is about the caller's input (bad image,
        # refused URL), so it passes through with the model's own message (our model server's
        # words, with any URL's secrets removed all the same).
        original = exc.response.get("OriginalStatusCode")
        detail = _model_message(exc.response.get("OriginalMessage") or message)
        if isinstance(original, int) and 400 <= original < 500:
            return original, redact_urls(detail)[:1000]
        return 502, f"the model failed (HTTP {original})"
    status = _ENDPOINT_ERRORS.get(code)
    if status is None:
        http = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        status = 502 if not isinstance(http, int) or http >= 500 or http < 400 else 500
    if status == 429:
        return status, _ENDPOINT_MESSAGES[429]
    return status, f"{_ENDPOINT_MESSAGES[status]} ({code})"


def _model_message(text: str) -> str:
    # Our model server answers {"error": "..."}; show that rather than the raw JSON.
    try:
        document = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return text
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return document["error"]
    return text


def _respond(status: int, payload: bytes, request_id: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON_CONTENT_TYPE, "X-Request-Id": request_id},
        "body": payload.decode("utf-8", errors="replace"),
    }


def _error(status: int, message: str, request_id: str) -> dict[str, Any]:
    body = json.dumps({"error": message, "request_id": request_id}).encode("utf-8")
    return _respond(status, body, request_id)


def _log(level: str, message: str, fields: dict[str, Any]) -> None:
    # One JSON object per line on stdout, which Lambda sends to CloudWatch Logs; Logs Insights
    # parses it without a pattern. Not `logging`: the runtime's root handler would prefix text.
    threshold = LOG_LEVELS.get(os.environ.get("LOG_LEVEL", "INFO").upper(), 20)
    if LOG_LEVELS[level] >= threshold:
        record = {"time": time.time(), "level": level, "message": message, **fields}
        print(json.dumps(record), flush=True)
