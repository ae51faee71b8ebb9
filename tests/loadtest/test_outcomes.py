"""How an Invoke's answer is counted: a success, a throttle, a function error or a non-200
answer from the handler. Errors come from a real boto3 Lambda client (botocore's Stubber), so
they have the shape boto3 gives them, Lambda's Reason included."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from loadtest.outcomes import FunctionError, HandlerError, Throttled, outcome, throttle


def answer(status: int, request_id: str = "0c2f3f4e-1b2a-4c5d-9e8f-123456789abc") -> bytes:
    body = {"error": "the model endpoint failed (ValidationError)", "request_id": request_id}
    return json.dumps({"statusCode": status, "headers": {}, "body": json.dumps(body)}).encode()


def test_a_200_answer_is_a_success():
    assert outcome({"StatusCode": 200}, answer(200)) is None


def test_a_non_200_answer_is_a_handler_error_without_its_request_id():
    failure = outcome({"StatusCode": 200}, answer(502))
    assert isinstance(failure, HandlerError)
    assert str(failure) == "HTTP 502: the model endpoint failed (ValidationError)"
    other = outcome({"StatusCode": 200}, answer(502, "ffffffff-1b2a-4c5d-9e8f-123456789abc"))
    assert str(other) == str(failure)  # one row in Locust's failure table, not one per call


def test_the_function_error_header_is_a_function_error_with_its_type():
    body = json.dumps({
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: 0c2f3f4e-1b2a-4c5d-9e8f-123456789abc Error: Task timed out "
        "after 65.00 seconds",
    }).encode()  # fmt: skip
    failure = outcome({"StatusCode": 200, "FunctionError": "Unhandled"}, body)
    assert isinstance(failure, FunctionError)
    assert str(failure) == (
        "Unhandled: Sandbox.Timedout: RequestId: <id> Error: Task timed out after 65.00 seconds"
    )
    assert isinstance(outcome({"FunctionError": "Unhandled"}, b"not json"), FunctionError)


def test_an_answer_without_a_status_code_is_a_success():
    assert outcome({"StatusCode": 200}, b'{"predictions": []}') is None
    assert outcome({"StatusCode": 200}, b"null") is None


def _error(code: str, status: int, **modeled) -> ClientError:
    client = boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke", code, "Rate Exceeded.", http_status_code=status, modeled_fields=modeled
        )
        with pytest.raises(ClientError) as caught:
            client.invoke(FunctionName="f", Payload=b"{}")
    return caught.value


def test_a_429_is_a_throttle_with_lambdas_reason():
    error = _error(
        "TooManyRequestsException",
        429,
        Type="User",
        Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
    )
    found = throttle(error)
    assert isinstance(found, Throttled)
    assert str(found) == "ReservedFunctionConcurrentInvocationLimitExceeded"


def test_other_client_errors_are_not_throttles():
    assert throttle(_error("ResourceNotFoundException", 404)) is None
