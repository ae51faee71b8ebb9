"""The route table: who answers what, by protocol; and the front door that uses it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ops.localcloud.gateway import create_app
from ops.localcloud.routes import RouteTable, json_routes, query_routes, rest_route
from ops.localcloud.wire import AwsError


def signed(service: str) -> dict[str, str]:
    scope = f"Credential=AKID/20260101/eu-west-1/{service}/aws4_request"
    return {"authorization": f"AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=0"}


def invoke(call):
    if call.params["FunctionName"] == "missing":
        raise AwsError("ResourceNotFoundException", "no such function", status=404)
    return {"region": call.region, "params": call.params}


TABLE = RouteTable(
    [
        *json_routes("SageMaker", "sagemaker", "SageMaker", {"DescribeTrainingJob": print}),
        *query_routes("IAM", "iam", "https://iam.amazonaws.com/doc/2010-05-08/", {"X": print}),
        rest_route(
            "Lambda",
            "Invoke",
            "lambda",
            "POST",
            "/2015-03-31/functions/{FunctionName}/invocations",
            invoke,
        ),
    ]
)


def test_json_routes_go_by_target():
    found = TABLE.find("POST", "/", {"x-amz-target": "SageMaker.DescribeTrainingJob"}, b"")
    assert found[0].name == "SageMaker.DescribeTrainingJob"
    assert TABLE.find("POST", "/", {"x-amz-target": "SageMaker.CreateModel"}, b"") is None


def test_query_routes_go_by_action_and_signing_service():
    assert TABLE.find("POST", "/", signed("iam"), b"Action=X&Version=2010-05-08")[0].name == "IAM.X"
    assert TABLE.find("GET", "/", signed("iam"), b"", b"Action=X")[0].name == "IAM.X"
    assert TABLE.find("POST", "/", signed("iam"), b"Action=GetRole") is None
    assert TABLE.find("POST", "/", signed("sts"), b"Action=X") is None


def test_rest_routes_go_by_method_path_and_signing_service():
    path = "/2015-03-31/functions/fn-1/invocations"
    route, params = TABLE.find("POST", path, signed("lambda"), b"")
    assert (route.name, params) == ("Lambda.Invoke", {"FunctionName": "fn-1"})
    assert TABLE.find("GET", path, signed("lambda"), b"") is None
    assert TABLE.find("POST", path, signed("s3"), b"") is None  # a bucket named 2015-03-31


def test_one_route_per_operation():
    with pytest.raises(ValueError, match="two routes"):
        RouteTable(json_routes("SageMaker", "sagemaker", "SageMaker", {"A": print}) * 2)


def test_the_front_door_answers_routes_and_lists_them_on_health():
    async def requests():
        transport = httpx.ASGITransport(app=create_app(TABLE, "http://127.0.0.1:9"))
        async with httpx.AsyncClient(transport=transport, base_url="http://localcloud") as client:
            path = "/2015-03-31/functions/{}/invocations"
            return (
                await client.post(
                    path.format("fn-1") + "?Qualifier=live",
                    content=b'{"payload": 1}',
                    headers=signed("lambda"),
                ),
                await client.post(path.format("missing"), headers=signed("lambda")),
                await client.get("/_localcloud/health"),
            )

    answer, missing, health = asyncio.run(requests())
    assert answer.status_code == 200
    assert answer.json() == {
        "region": "eu-west-1",
        "params": {"FunctionName": "fn-1", "Qualifier": "live", "payload": 1},
    }
    assert missing.status_code == 404
    assert missing.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    intercepted = health.json()["intercepted"]
    assert intercepted == ["SageMaker.DescribeTrainingJob", "IAM.X", "Lambda.Invoke"]


def test_the_front_door_checks_requests_against_the_service_model_first():
    async def requests():
        transport = httpx.ASGITransport(app=create_app(TABLE, "http://127.0.0.1:9"))
        async with httpx.AsyncClient(transport=transport, base_url="http://localcloud") as client:
            path = "/2015-03-31/functions/{}/invocations"
            return (
                await client.post(path.format("f" * 300), headers=signed("lambda")),
                await client.post(
                    path.format("fn-1") + "?Qualifier=not%20a%20qualifier",
                    headers=signed("lambda"),
                ),
            )

    too_long, bad_qualifier = asyncio.run(requests())
    assert too_long.status_code == 400
    assert too_long.json()["__type"] == "ValidationException"
    message = too_long.json()["message"]
    assert "at 'functionName' failed to satisfy constraint: Member must have length" in message
    assert bad_qualifier.status_code == 400
    assert "Value 'not a qualifier' at 'qualifier'" in bad_qualifier.json()["message"]
