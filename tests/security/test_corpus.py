"""Every case of the stored hostile-input corpus (tests/corpus/) against a real model-server
process and the Lambda handler: the expected status class, a JSON error for a 4xx, an answer
within a bounded time, no secret echoed, and the server still serving afterwards."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from lambda_src import handler as fn
from tests.conftest import REPO
from tests.security.conftest import URL_BUDGET_S, ModelServer

pytestmark = pytest.mark.slow
CORPUS = REPO / "tests" / "corpus"
# A case may take the URL budget (for each of a few redirect hops at worst) plus decoding.
CASE_BOUND_S = 3 * URL_BUDGET_S + 5
SECRETS = ("hunter2", "s3cr3t")


def cases(file: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / file).read_text().splitlines()]


def by_name(file: str):
    loaded = cases(file)
    return pytest.mark.parametrize("case", loaded, ids=[case["name"] for case in loaded])


def expand(text: str, hostile: str) -> str:
    userinfo = hostile.replace("http://", "http://alice:hunter2@")
    return text.replace("{userinfo_host}", userinfo).replace("{host}", hostile)


def exchange(server: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw request bytes (no client-side checks) and read one response."""
    parts = urlsplit(server)
    with socket.create_connection((parts.hostname, parts.port), timeout=CASE_BOUND_S) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        return response.status, dict(response.getheaders()), response.read()


def request_bytes(method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: model", f"Content-Length: {len(body)}"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


def check(
    status: int,
    headers: dict[str, str],
    body: bytes,
    expect: str,
    started: float,
    json_error: bool = True,
) -> None:
    assert f"{status // 100}xx" in expect.split("|"), (status, body[:300])
    assert time.monotonic() - started < CASE_BOUND_S
    text = body.decode("utf-8", "replace")
    assert not any(secret in text for secret in SECRETS), text
    if status >= 400 and json_error:
        assert headers.get("content-type", "").startswith("application/json"), (headers, text)
        assert isinstance(json.loads(body)["error"], str)


def invoke(server: ModelServer, body: bytes, content_type: str, expect: str) -> None:
    started = time.monotonic()
    raw = request_bytes("POST", "/invocations", {"Content-Type": content_type}, body)
    status, headers, answer = exchange(server.url, raw)
    check(status, {k.lower(): v for k, v in headers.items()}, answer, expect, started)
    assert server.alive()


@by_name("images.jsonl")
def test_image_bodies(model_server: ModelServer, case: dict) -> None:
    body = (CORPUS / "images" / case["file"]).read_bytes()
    invoke(model_server, body, case["content_type"], case["expect"])


@by_name("urls.jsonl")
def test_urls(model_server: ModelServer, hostile: str, case: dict) -> None:
    request = json.dumps({"url": expand(case["url"], hostile)}).encode()
    invoke(model_server, request, "application/json", case["expect"])


@by_name("requests.jsonl")
def test_requests(model_server: ModelServer, case: dict) -> None:
    body = base64.b64decode(case["body_b64"]) + b"a" * case.get("pad", 0)
    started = time.monotonic()
    raw = request_bytes(case["method"], case["path"], case["headers"], body)
    status, headers, answer = exchange(model_server.url, raw)
    lowered = {k.lower(): v for k, v in headers.items()}
    check(status, lowered, answer, case["expect"], started, json_error=case["method"] != "HEAD")
    assert model_server.alive()


@by_name("raw.jsonl")
def test_raw_requests(model_server: ModelServer, case: dict) -> None:
    # uvicorn's HTTP parser answers protocol errors itself, in plain text: only the class counts.
    started = time.monotonic()
    status, headers, answer = exchange(model_server.url, base64.b64decode(case["raw_b64"]))
    check(status, headers, answer, case["expect"], started, json_error=False)
    assert model_server.alive()


def _expand_event(event: object, hostile: str) -> object:
    if isinstance(event, str):
        return expand(event, hostile)
    if isinstance(event, dict):
        event = {key: _expand_event(value, hostile) for key, value in event.items()}
        pad = event.pop("pad_body", 0)
        if pad:
            event["body"] += "A" * pad
        return event
    if isinstance(event, list):
        return [_expand_event(value, hostile) for value in event]
    return event


@by_name("lambda_events.jsonl")
def test_lambda_events(
    model_server: ModelServer,
    runtime_endpoint: str,
    hostile: str,
    case: dict,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", "dog-breed-classifier")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime_endpoint)
    monkeypatch.setattr(fn, "_client", None)
    event = _expand_event(case["event"], hostile)
    started = time.monotonic()
    result = fn.handler(event, SimpleNamespace(aws_request_id=f"corpus-{case['name']}"))
    body = result["body"].encode("utf-8", "surrogatepass")
    check(
        result["statusCode"],
        result["headers"] | {"content-type": "application/json"},
        body,
        case["expect"],
        started,
    )
    logged = capsys.readouterr().out
    assert not any(secret in logged for secret in SECRETS), logged
    assert len(logged.splitlines()) == 1 and json.loads(logged)["request_id"].startswith("corpus-")
    assert model_server.alive()


def test_the_corpus_is_large_and_covers_every_kind() -> None:
    counts = {
        file: len(cases(file))
        for file in (
            "images.jsonl",
            "urls.jsonl",
            "requests.jsonl",
            "raw.jsonl",
            "lambda_events.jsonl",
        )
    }
    assert sum(counts.values()) >= 300, counts
    assert all(count >= 10 for count in counts.values()), counts
    images = {case["file"] for case in cases("images.jsonl")}
    assert images == {path.name for path in (CORPUS / "images").iterdir()}


def test_the_server_log_holds_no_secret(model_server: ModelServer) -> None:
    text = Path(model_server.log).read_text()
    assert not any(secret in text for secret in SECRETS)
