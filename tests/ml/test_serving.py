"""The trained artifact served over real HTTP by the model server, as the container would."""

from __future__ import annotations

import io
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image

from ml.url_fetch import FetchPolicy, UrlFetchError, fetch
from tests.conftest import model_server_process

pytestmark = pytest.mark.slow
BODY_LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def sample_jpeg(synth_data: Path) -> bytes:
    return next((synth_data / "test" / "003.Airedale_terrier").glob("*.jpg")).read_bytes()


@pytest.fixture(scope="module")
def image_host(sample_jpeg: bytes) -> Iterator[str]:
    """A web server on 127.0.0.1 with an image, a redirect to a private address, and more."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            routes = {
                "/dog.jpg": (200, {"Content-Type": "image/jpeg"}, sample_jpeg),
                "/to-private": (302, {"Location": "http://10.0.0.1/dog.jpg"}, b""),
                "/to-dog": (302, {"Location": "/dog.jpg"}, b""),
                "/huge.jpg": (200, {"Content-Type": "image/jpeg"}, b"\xff" * (BODY_LIMIT + 1)),
                "/page.html": (200, {"Content-Type": "text/html"}, b"<html>not a dog</html>"),
            }
            status, headers, body = routes.get(self.path, (404, {}, b"missing"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def server(trained: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The model server on a free port, loading model.tar.gz like an endpoint instance."""
    settings = {
        "INFERENCE_URL_ALLOW_NETWORKS": "127.0.0.1/32",
        "INFERENCE_URL_MAX_BYTES": str(BODY_LIMIT),
        "INFERENCE_MAX_BODY_BYTES": str(BODY_LIMIT),
    }
    with model_server_process(trained[0], tmp_path_factory.mktemp("served"), settings) as served:
        yield served[0]


def invoke(server: str, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server}/invocations",
        content=body,
        headers={"Content-Type": content_type, **headers},
        timeout=60,
    )


def png_bytes(jpeg: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(buffer, "PNG")
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression-bomb shape)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_ping_answers_once_the_model_is_loaded(server: str) -> None:
    response = httpx.get(f"{server}/ping")
    assert response.status_code == 200


@pytest.mark.parametrize("content_type", ["image/jpeg", "application/x-image"])
def test_jpeg_is_classified(server: str, sample_jpeg: bytes, content_type: str) -> None:
    response = invoke(server, sample_jpeg, content_type)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 4  # top-5 capped at the 4 classes
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)
    assert {p["label"] for p in predictions} == {
        "Affenpinscher",
        "Afghan hound",
        "Airedale terrier",
        "Akita",
    }
    assert "logits" not in response.json()


def test_png_gets_the_same_answer_as_the_jpeg_it_was_made_from(
    server: str, sample_jpeg: bytes
) -> None:
    from_jpeg = invoke(server, sample_jpeg, "image/jpeg").json()
    from_png = invoke(server, png_bytes(sample_jpeg), "image/png").json()
    assert from_png["predictions"][0]["index"] == from_jpeg["predictions"][0]["index"]
    assert from_png["predictions"][0]["probability"] == pytest.approx(
        from_jpeg["predictions"][0]["probability"], abs=1e-4
    )


def test_url_request_fetches_and_classifies(
    server: str, image_host: str, sample_jpeg: bytes
) -> None:
    request = {"url": f"{image_host}/to-dog", "top_k": 2, "include_logits": True}
    response = invoke(server, json.dumps(request).encode(), "application/json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["predictions"]) == 2 and len(body["logits"]) == 4
    direct = invoke(server, sample_jpeg, "image/jpeg").json()
    assert body["predictions"][0] == direct["predictions"][0]


BAD_REQUESTS = {
    "malformed json": (b'{"url": ', "application/json", 400, "malformed JSON"),
    "json not an object": (b'["http://x"]', "application/json", 400, "must be an object"),
    "missing url": (b'{"link": "http://x"}', "application/json", 400, "unknown fields"),
    "url wrong type": (b'{"url": 42}', "application/json", 400, '"url"'),
    "top_k wrong type": (b'{"url": "http://x", "top_k": "3"}', "application/json", 400, "top_k"),
    "non-image bytes": (b"plain text, not a picture", "image/jpeg", 400, "not a JPEG or PNG"),
    "another image format": (b"GIF89a\x01\x00\x01\x00", "image/jpeg", 415, "GIF"),
    "empty body": (b"", "image/png", 400, "empty"),
    "unsupported content type": (b"hello", "text/plain", 415, "unsupported content type"),
    "metadata address": (
        b'{"url": "http://169.254.169.254/latest/meta-data/"}',
        "application/json",
        400,
        "link-local",
    ),
    "private address": (b'{"url": "http://10.0.0.1/dog.jpg"}', "application/json", 400, "private"),
    "file scheme": (
        b'{"url": "file:///etc/passwd"}',
        "application/json",
        400,
        "only http and https",
    ),
    "bomb-shaped png": (png_claiming(30000, 30000), "image/png", 413, "too large"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_input_gets_a_4xx_json_error_and_the_server_stays_up(server: str, case: str) -> None:
    body, content_type, status, message = BAD_REQUESTS[case]
    response = invoke(server, body, content_type)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert httpx.get(f"{server}/ping").status_code == 200


def test_truncated_jpeg_is_refused(server: str, sample_jpeg: bytes) -> None:
    response = invoke(server, sample_jpeg[: len(sample_jpeg) // 2], "image/jpeg")
    assert response.status_code == 400
    assert "truncated" in response.json()["error"]


def test_oversized_body_is_refused_before_it_is_processed(server: str) -> None:
    response = invoke(server, b"\xff" * (BODY_LIMIT + 1), "image/jpeg")
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/to-private", "10.0.0.1 is a private address"),
        ("/huge.jpg", "limit"),
        ("/page.html", "not a JPEG or PNG"),
        ("/nothing", "HTTP 404"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(
    server: str, image_host: str, path: str, message: str
) -> None:
    response = invoke(server, json.dumps({"url": image_host + path}).encode(), "application/json")
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_unanswerable_accept_header_gets_406(server: str, sample_jpeg: bytes) -> None:
    response = invoke(server, sample_jpeg, "image/jpeg", Accept="text/csv")
    assert response.status_code == 406


def test_server_still_serves_after_all_the_bad_input(server: str, sample_jpeg: bytes) -> None:
    assert invoke(server, sample_jpeg, "image/jpeg").status_code == 200


def test_loopback_is_refused_without_the_allow_list(image_host: str) -> None:
    with pytest.raises(UrlFetchError, match="loopback"):
        fetch(f"{image_host}/dog.jpg", FetchPolicy())
    host_name_url = image_host.replace("127.0.0.1", "localhost")
    with pytest.raises(UrlFetchError, match="loopback"):
        fetch(f"{host_name_url}/dog.jpg", FetchPolicy())


@pytest.mark.parametrize("feature_norm", [False, True])
def test_model_fn_loads_artifacts_from_before_and_after_the_feature_norm(
    tmp_path: Path, feature_norm: bool
) -> None:
    import torch

    from ml.inference import model_fn
    from ml.model import ModelConfig, build_model

    config = ModelConfig(
        arch="resnet18", num_classes=3, hidden=32, dropout=0.1, feature_norm=feature_norm
    )
    torch.save(build_model(config, weights="none").state_dict(), tmp_path / "model.pth")
    meta = {"arch": "resnet18", "num_classes": 3, "hidden": 32, "dropout": 0.1}
    meta |= {"class_names": ["a", "b", "c"], "image_size": 32}
    if feature_norm:  # older artifacts do not have the key
        meta["feature_norm"] = True
    (tmp_path / "model_config.json").write_text(json.dumps(meta))
    loaded = model_fn(str(tmp_path))
    assert isinstance(loaded.model.norm, torch.nn.LayerNorm) == feature_norm
