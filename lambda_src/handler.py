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
function itself is misconfigured. Every call writes one JSON log line with the request id.

Settings (environment): ``ENDPOINT_NAME`` (required), ``MAX_BODY_BYTES`` (default 6 MiB, the
synchronous Lambda and SageMaker payload limit), ``LOG_LEVEL``. Only the standard library and
the boto3 that the Lambda Python runtime provides are used.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
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

# SageMaker runtime error code -> the status the caller gets.
_ENDPOINT_ERRORS = {
    "ThrottlingException": 429,
    "ModelNotReadyException": 503,
    "ServiceUnavailable": 503,
    "InternalDependencyException": 502,
    "InternalFailure": 502,
    "ValidationError": 502,  # e.g. the endpoint does not exist: our configuration, not the caller
}

LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}

_client = None


def runtime_client():
    """The sagemaker-runtime client, created once per execution environment and reused.

    Retries are botocore's standard mode (throttles and transient errors are retried with backoff
    within the function's time budget); timeouts stay below the function's own.
    """
    global _client
    if _client is None:
        _client = boto3.client(
            "sagemaker-runtime",
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
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
        log["aws_error"] = exc.response.get("Error", {}).get("Code")
    except (ConnectTimeoutError, ReadTimeoutError) as exc:
        error = 504, f"the model endpoint did not answer in time: {exc}"
    except BotoCoreError as exc:
        error = 502, f"could not reach the model endpoint: {exc}"
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
        raw = body.encode("utf-8")
    if len(raw) > limit:
        raise BadRequest(f"request body is larger than {limit} bytes", 413)
    if content_type in IMAGE_CONTENT_TYPES:
        if not event.get("isBase64Encoded"):
            raise BadRequest("image bodies must be base64 encoded (isBase64Encoded: true)")
        return EndpointRequest(content_type, raw)
    if content_type != JSON_CONTENT_TYPE:
        allowed = ", ".join(sorted({JSON_CONTENT_TYPE, *IMAGE_CONTENT_TYPES}))
        raise BadRequest(f"unsupported content type {content_type!r}; use one of {allowed}", 415)
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    return _json_request(document)


def _json_request(document: Any) -> EndpointRequest:
    if not isinstance(document, dict):
        raise BadRequest('request must be a JSON object like {"url": "https://..."}')
    unknown = sorted(set(document) - REQUEST_KEYS)
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}; allowed: {sorted(REQUEST_KEYS)}")
    url = document.get("url")
    if url is None:
        raise BadRequest('missing "url": send {"url": "https://..."} or an image body')
    if not isinstance(url, str) or not url.strip():
        raise BadRequest('"url" must be a non-empty string')
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f'"url" is longer than {MAX_URL_LENGTH} characters')
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f'"url" must be an http(s) URL with a host, got {url[:100]!r}')
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
        # refused URL), so it passes through with the model's own message.
        original = exc.response.get("OriginalStatusCode")
        original_message = exc.response.get("OriginalMessage") or message
        detail = _model_message(original_message)
        if isinstance(original, int) and 400 <= original < 500:
            return original, detail
        return 502, f"the model failed: {detail}"
    status = _ENDPOINT_ERRORS.get(code)
    if status is None:
        http = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        status = 502 if not isinstance(http, int) or http >= 500 or http < 400 else 500
    if status == 429:
        return status, "the model endpoint is throttling requests; retry with backoff"
    return status, f"model endpoint error ({code}): {message}"


def _model_message(text: str) -> str:
    # Our model server answers {"error": "..."}; show that rather than the raw JSON.
    try:
        document = json.loads(text)
    except (TypeError, ValueError):
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
