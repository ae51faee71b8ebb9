"""The AWS wire as the local cloud speaks it: errors, the protocols' codecs, ARNs and pages.

A codec turns a request body into parameters for a handler and the handler's result (or an
`AwsError`) into the response a botocore client parses. Handlers never see HTTP.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from starlette.responses import Response

ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_REGION = "us-east-1"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


class AwsError(Exception):
    """An error answered the way AWS answers it: HTTP status, error code, message, and the
    members the error's shape adds (SageMaker Runtime's ``ModelError``: ``OriginalStatusCode``,
    ``OriginalMessage``, ``LogStreamArn``), which the JSON protocols carry beside the message."""

    def __init__(self, code: str, message: str, status: int = 400, members: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.members = members or {}


def validation_error(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def signing_scope(authorization: str | None) -> tuple[str, str | None]:
    """(region, service) from a SigV4 Authorization header's credential scope."""
    match = _CREDENTIAL_SCOPE.search(authorization or "")
    return (match.group(1), match.group(2)) if match else (DEFAULT_REGION, None)


def now() -> datetime:
    return datetime.now(UTC)


def arn(service: str, region: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


def form_of(body: bytes, query_string: bytes = b"") -> dict[str, str]:
    """A query-protocol request's parameters (form body or query string), first values."""
    text = (query_string + b"&" + body).decode("utf-8", errors="replace")
    return {key: values[0] for key, values in parse_qs(text).items()}


def members(form: dict[str, str], name: str) -> list[str]:
    """The query protocol's list ``Name.member.1``, ``Name.member.2``, ... in order."""
    prefix = f"{name}.member."
    indexed = [
        (int(key[len(prefix) :]), value)
        for key, value in form.items()
        if key.startswith(prefix) and key[len(prefix) :].isdigit()
    ]
    return [value for _, value in sorted(indexed)]


def page(
    items: list, request: dict, identity: Callable[[object], str], limit: int = 100
) -> tuple[list, dict]:
    """One page of ``items`` per ``MaxResults`` (1 to ``limit``, as the service model says) and
    ``NextToken``, and the next token if any.

    Tokens are opaque and name the last item returned (by ``identity``), not an offset, so items
    created between two calls neither repeat nor push others out of the listing. A token that is
    not one of ours is a ValidationException, as on AWS (a 500 made the CLI retry it)."""
    size = request.get("MaxResults", limit)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= limit:
        raise validation_error(f"MaxResults must be an integer from 1 to {limit}")
    start = 0
    if request.get("NextToken"):
        after = _token_identity(request["NextToken"])
        names = [identity(item) for item in items]
        if after not in names:
            raise validation_error("The pagination token is no longer valid")
        start = names.index(after) + 1
    chunk = items[start : start + size]
    more = start + size < len(items)
    return chunk, ({"NextToken": _token(identity(chunk[-1]))} if more and chunk else {})


def encode_token(document: dict) -> str:
    """An opaque page token carrying ``document`` (JSON), versioned so a later format can tell
    its tokens from these."""
    return base64.urlsafe_b64encode(json.dumps({"v": 1, **document}).encode()).decode()


def decode_token(token: object) -> dict | None:
    """The document `encode_token` put in ``token``, or None for anything not one of ours."""
    try:
        document = json.loads(base64.urlsafe_b64decode(str(token).encode()))
    except (ValueError, TypeError):
        return None
    return document if isinstance(document, dict) and document.get("v") == 1 else None


def _token(identity: str) -> str:
    return encode_token({"after": identity})


def _token_identity(token: object) -> str:
    document = decode_token(token)
    if document is None or not isinstance(document.get("after"), str):
        raise validation_error("Invalid pagination token")
    return document["after"]


@dataclass(frozen=True)
class Call:
    """What a handler gets: the region the client signed for and the decoded parameters."""

    region: str
    params: dict


def _to_json(value: object) -> object:
    """datetimes become epoch seconds (the JSON protocol's timestamp form); Nones are left
    out, recursively."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


class Json11:
    """The AWS JSON 1.1 protocol (``X-Amz-Target``): a JSON object in, a JSON object out."""

    media_type = "application/x-amz-json-1.1"

    def decode(self, body: bytes, query_string: bytes, headers=None) -> dict:
        try:
            document = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            raise AwsError("SerializationException", f"request body is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise AwsError("SerializationException", "request body must be a JSON object")
        return document

    status = 200  # of a success

    def encode(self, operation: str, result: object, request_id: str) -> Response:
        # An operation that answers nothing (a DELETE's 204) has an empty body.
        body = b"" if result is None else json.dumps(_to_json(result))
        return Response(
            body,
            status_code=self.status,
            media_type=self.media_type,
            headers={"x-amzn-RequestId": request_id},
        )

    def error(self, error: AwsError, request_id: str) -> Response:
        document = {"__type": error.code, "message": error.message, **error.members}
        return Response(
            json.dumps(document),
            status_code=error.status,
            media_type=self.media_type,
            headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": error.code},
        )


class Query:
    """The AWS query protocol (IAM, STS): form parameters with ``Action`` in, XML out. A
    handler returns the inner XML of ``<ActionResult>``."""

    def __init__(self, namespace: str):
        self.namespace = namespace

    def decode(self, body: bytes, query_string: bytes, headers=None) -> dict:
        return form_of(body, query_string)

    def encode(self, operation: str, result: object, request_id: str) -> Response:
        xml = (
            f'<{operation}Response xmlns="{self.namespace}"><{operation}Result>{result}'
            f"</{operation}Result><ResponseMetadata><RequestId>{request_id}</RequestId>"
            f"</ResponseMetadata></{operation}Response>"
        )
        return Response(xml, media_type="text/xml")

    def error(self, error: AwsError, request_id: str) -> Response:
        xml = (
            f'<ErrorResponse xmlns="{self.namespace}"><Error><Type>Sender</Type>'
            f"<Code>{error.code}</Code><Message>{escape(error.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Response(xml, status_code=error.status, media_type="text/xml")


class RestJson(Json11):
    """REST-JSON (Lambda, ...): members in the path, the query string and a JSON body; the
    route's path parameters join them (see `routes.RouteTable.find`).

    Made from an operation's botocore model (`for_operation`), it also knows the operation's
    success status (Lambda's PutProvisionedConcurrencyConfig answers 202, its DELETEs 204) and
    turns query-string members into the members the model names, with their types (a
    ``MaxItems=10`` in the query is the integer member ``MaxItems``)."""

    media_type = "application/json"

    def __init__(self, operation_model=None):
        self.query_members: dict[str, tuple[str, str]] = {}  # query name -> (member, type)
        if operation_model is None:
            return
        self.status = int(operation_model.http.get("responseCode", 200))
        shape = operation_model.input_shape
        for name, member in shape.members.items() if shape else ():
            if member.serialization.get("location") == "querystring":
                query_name = member.serialization.get("name", name)
                self.query_members[query_name] = (name, member.type_name)

    def decode(self, body: bytes, query_string: bytes, headers=None) -> dict:
        return {**self._query(query_string), **super().decode(body, b"")}

    def _query(self, query_string: bytes) -> dict:
        params: dict = {}
        for key, value in form_of(b"", query_string).items():
            member, kind = self.query_members.get(key, (key, "string"))
            if kind in ("integer", "long"):
                with contextlib.suppress(ValueError):
                    value = int(value)
            elif kind == "boolean" and value in ("true", "false"):
                value = value == "true"
            params[member] = value
        return params


class RestPayload(RestJson):
    """REST with a raw payload (SageMaker Runtime's InvokeEndpoint): the HTTP body is the
    operation's blob payload member, as bytes, in both directions, and members the model places
    in headers come from, and go to, those headers; path and query-string members are
    REST-JSON's, and so are errors. Built from the operation's botocore model, so the header
    names are exactly the ones botocore sends and reads."""

    def __init__(self, operation_model):
        def headers_of(shape) -> dict[str, str]:  # member -> header name
            return {
                name: member.serialization.get("name", name)
                for name, member in (shape.members.items() if shape else ())
                if member.serialization.get("location") == "header"
            }

        super().__init__(operation_model)
        self.request_headers = headers_of(operation_model.input_shape)
        self.response_headers = headers_of(operation_model.output_shape)
        self.request_payload = operation_model.input_shape.serialization.get("payload")
        self.response_payload = operation_model.output_shape.serialization.get("payload")
        output = operation_model.output_shape
        # Lambda's Invoke answers 200, 202 (Event) or 204 (DryRun): a member carries it.
        self.status_member = next(
            (
                name
                for name, member in (output.members.items() if output else ())
                if member.serialization.get("location") == "statusCode"
            ),
            None,
        )

    def decode(self, body: bytes, query_string: bytes, headers=None) -> dict:
        params: dict = self._query(query_string)
        for member, header in self.request_headers.items():
            if headers is not None and header in headers:  # Starlette's headers: any case
                params[member] = headers[header]
        if self.request_payload:
            params[self.request_payload] = body
        return params

    def encode(self, operation: str, result: object, request_id: str) -> Response:
        headers = {"x-amzn-RequestId": request_id}
        for member, header in self.response_headers.items():
            if result.get(member) is not None:
                headers[header] = str(result[member])
        status = result.get(self.status_member) if self.status_member else None
        return Response(
            result.get(self.response_payload) or b"",
            status_code=status or self.status,
            headers=headers,
        )


def request_id() -> str:
    return str(uuid.uuid4())
