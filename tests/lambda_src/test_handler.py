"""The Lambda handler against moto's sagemaker-runtime (canned endpoint results) and, for what
moto cannot produce (binary bodies, endpoint errors), botocore's Stubber on the real client."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from lambda_src import handler as fn

EVENTS = Path(__file__).resolve().parent.parent / "events"
CANNED = {"predictions": [{"index": 36, "label": "Brittany", "probability": 0.93}]}


def streaming(document: dict) -> StreamingBody:
    data = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def event(name: str):
    return json.loads((EVENTS / name).read_text())


def context(request_id: str = "req-1234"):
    return SimpleNamespace(aws_request_id=request_id, function_name="dog-breed-inference")


@pytest.fixture(autouse=True)
def lambda_env(monkeypatch):
    monkeypatch.setenv("ENDPOINT_NAME", "dog-breed-classifier")
    monkeypatch.delenv("MAX_BODY_BYTES", raising=False)
    monkeypatch.setattr(fn, "_client", None)  # a fresh execution environment per test


@pytest.fixture
def moto_runtime():
    """moto's sagemaker-runtime, with canned answers queued the way moto documents."""
    with mock_aws():

        def queue(*bodies: dict) -> None:
            import requests

            results = [
                {
                    "Body": json.dumps(body),
                    "ContentType": "application/json",
                    "InvokedProductionVariant": "AllTraffic",
                    "CustomAttributes": "",
                }
                for body in bodies
            ]
            url = "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results"
            requests.post(url, json={"region": "us-east-1", "results": results}).raise_for_status()

        yield queue


@pytest.fixture
def stub():
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    fn._client = client
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    "name", ["direct_url.json", "function_url_json.json", "api_gateway_json_base64.json"]
)
def test_url_events_return_the_endpoint_json(moto_runtime, name):
    moto_runtime(CANNED)
    result = fn.handler(event(name), context())
    assert result["statusCode"] == 200, result
    assert result["headers"]["Content-Type"] == "application/json"
    assert result["headers"]["X-Request-Id"] == "req-1234"
    assert json.loads(result["body"]) == CANNED


def test_client_is_created_once_per_execution_environment(moto_runtime):
    moto_runtime(CANNED, CANNED)
    fn.handler(event("direct_url.json"), context())
    first = fn._client
    fn.handler(event("direct_url.json"), context())
    assert first is not None and fn._client is first


def test_url_request_is_forwarded_as_json_with_only_known_fields(stub):
    stub.add_response(
        "invoke_endpoint",
        {"Body": streaming(CANNED), "ContentType": "application/json"},
        {
            "EndpointName": "dog-breed-classifier",
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps(
                {"url": "https://images.example.com/dogs/Brittany_02625.jpg", "top_k": 3}
            ).encode(),
        },
    )
    assert fn.handler(event("direct_url_top_k.json"), context())["statusCode"] == 200


def test_image_event_sends_the_decoded_bytes(stub):
    ev = event("function_url_image.json")
    jpeg = base64.b64decode(ev["body"])
    assert jpeg[:2] == b"\xff\xd8"
    stub.add_response(
        "invoke_endpoint",
        {"Body": streaming(CANNED), "ContentType": "application/json"},
        {
            "EndpointName": "dog-breed-classifier",
            "ContentType": "image/jpeg",
            "Accept": "application/json",
            "Body": jpeg,
        },
    )
    result = fn.handler(ev, context())
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == CANNED


@pytest.mark.parametrize(
    ("name", "status", "fragment"),
    [
        ("missing_url.json", 400, "unknown field"),
        ("url_not_http.json", 400, "http(s) URL"),
        ("url_wrong_type.json", 400, "non-empty string"),
        ("top_k_wrong_type.json", 400, "top_k"),
        ("body_bad_json.json", 400, "not valid JSON"),
        ("body_not_base64.json", 400, "not valid base64"),
        ("image_not_base64.json", 400, "base64 encoded"),
        ("unsupported_content_type.json", 415, "unsupported content type"),
        ("empty_body.json", 400, "empty"),
        ("not_an_object.json", 400, "JSON object"),
    ],
)
def test_bad_input_is_a_400_and_never_reaches_the_endpoint(stub, name, status, fragment):
    result = fn.handler(event(name), context("req-bad"))  # Stubber fails on any call
    assert result["statusCode"] == status, result
    body = json.loads(result["body"])
    assert fragment in body["error"]
    assert body["request_id"] == "req-bad"


def test_missing_url_without_other_fields():
    result = fn.handler({}, context())
    assert result["statusCode"] == 400
    assert 'missing "url"' in json.loads(result["body"])["error"]


def test_oversize_body_is_413(stub, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "512")
    result = fn.handler(event("function_url_image.json"), context())  # 900-byte JPEG
    assert result["statusCode"] == 413
    assert "larger than 512 bytes" in json.loads(result["body"])["error"]


@pytest.mark.parametrize(
    ("code", "http", "extra", "status", "fragment"),
    [
        (
            "ModelError",
            424,
            {"OriginalStatusCode": 400, "OriginalMessage": '{"error": "not an image"}'},
            400,
            "not an image",
        ),
        (
            "ModelError",
            424,
            {"OriginalStatusCode": 500, "OriginalMessage": "Traceback ..."},
            502,
            "the model failed",
        ),
        ("ThrottlingException", 400, {}, 429, "throttling"),
        ("ValidationError", 400, {}, 502, "ValidationError"),
        ("ServiceUnavailable", 503, {}, 503, "ServiceUnavailable"),
        ("ModelNotReadyException", 429, {}, 503, "ModelNotReady"),
        ("InternalFailure", 500, {}, 502, "InternalFailure"),
    ],
)
def test_endpoint_errors_map_to_statuses(stub, code, http, extra, status, fragment):
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message=f"{code} happened",
        http_status_code=http,
        modeled_fields=extra,
    )
    result = fn.handler(event("direct_url.json"), context())
    assert result["statusCode"] == status, result
    assert fragment in json.loads(result["body"])["error"]


def test_missing_endpoint_setting_is_a_500_that_names_it(monkeypatch):
    monkeypatch.delenv("ENDPOINT_NAME")
    result = fn.handler(event("direct_url.json"), context())
    assert result["statusCode"] == 500
    assert "ENDPOINT_NAME" in json.loads(result["body"])["error"]


def test_every_call_logs_one_json_line_with_the_request_id(stub, capsys):
    fn.handler(event("missing_url.json"), context("req-log"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1
    assert lines[0]["request_id"] == "req-log"
    assert lines[0]["status"] == 400
    assert lines[0]["level"] == "INFO"


def test_handler_uses_only_what_the_lambda_runtime_provides():
    source = Path(fn.__file__).read_text()
    imported = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imported <= {
        "__future__",
        "base64",
        "binascii",
        "json",
        "os",
        "re",
        "time",
        "dataclasses",
        "typing",
        "urllib",
        "boto3",
        "botocore",
    }, imported


def _lambda_timeout_s() -> int:
    """The function timeout Terraform sets: the dev tfvars' value, else the module default."""
    from tests.terraform.test_static import MODULES, TF, blocks, parse

    tfvars = parse(TF / "envs" / "dev" / "terraform.tfvars")
    if "lambda_timeout" in tfvars:
        return int(tfvars["lambda_timeout"])
    return int(blocks(MODULES / "lambda_function", "variable")["timeout"]["default"])


def test_the_endpoint_call_gives_up_before_lambda_kills_the_function(monkeypatch):
    for name in ("ENDPOINT_CONNECT_TIMEOUT_S", "ENDPOINT_READ_TIMEOUT_S", "ENDPOINT_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    budget = fn.endpoint_time_budget_s(*fn.endpoint_timings())
    # Margin for the handler's own work and the response: 5 s.
    assert budget + 5 <= _lambda_timeout_s(), (budget, _lambda_timeout_s())


def test_a_slow_endpoint_gives_the_documented_504_after_the_configured_attempts(monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release = threading.Event()
    attempts = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):
            attempts.append(self.path)
            release.wait(30)  # longer than the read timeout: the client gives up first

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{server.server_port}"
    )
    monkeypatch.setenv("ENDPOINT_READ_TIMEOUT_S", "1")
    monkeypatch.setenv("ENDPOINT_MAX_ATTEMPTS", "2")
    try:
        result = fn.handler(event("direct_url.json"), context())
    finally:
        release.set()
        server.shutdown()
    assert result["statusCode"] == 504
    assert json.loads(result["body"]) == {
        "error": "the model endpoint did not answer in time",
        "request_id": "req-1234",
    }
    assert len(attempts) == 2  # the configured attempts, each given up at the read timeout


def test_aws_error_texts_reach_the_log_but_not_the_caller(stub, capsys):
    arn = "arn:aws:sts::123456789012:assumed-role/dogops-lambda/fn"
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        service_message=f"User: {arn} is not authorized to perform: sagemaker:InvokeEndpoint",
        http_status_code=400,
    )
    result = fn.handler(event("direct_url.json"), context())
    assert result["statusCode"] == 502
    assert "123456789012" not in result["body"] and "arn:" not in result["body"]
    logged = json.loads(capsys.readouterr().out)
    assert arn in logged["aws_message"]


def test_model_errors_lose_url_secrets_in_answer_and_log(stub, capsys):
    leaked = "fetching 'https://bob:pw@images.example.com/dog.jpg?X-Amz-Signature=abc' failed"
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received client error (400)",
        http_status_code=424,
        modeled_fields={
            "OriginalStatusCode": 400,
            "OriginalMessage": json.dumps({"error": leaked}),
        },
    )
    result = fn.handler(event("direct_url.json"), context())
    assert result["statusCode"] == 400
    shown = json.loads(result["body"])["error"]
    assert shown == "fetching 'https://images.example.com/dog.jpg' failed"
    assert "X-Amz-Signature" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://[evil.com]/", "http://host:99999/", "http://h/\ud800"]
)
def test_malformed_urls_are_a_400_not_a_crash(url):
    result = fn.handler({"url": url}, context())
    assert result["statusCode"] == 400
    assert "url" in json.loads(result["body"])["error"]


def test_an_unexpected_failure_is_a_500_without_its_text(monkeypatch, capsys):
    def broken(*_args):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(fn, "parse_event", broken)
    result = fn.handler(event("direct_url.json"), context())
    assert result["statusCode"] == 500
    assert json.loads(result["body"])["error"] == "internal error"
    assert "secret internals" not in result["body"]
    assert json.loads(capsys.readouterr().out)["exception"] == "RuntimeError"
