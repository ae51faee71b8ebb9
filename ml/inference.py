"""Serving handlers for the SageMaker PyTorch container (and the local model server).

The container calls ``model_fn(model_dir)`` once, then for each request
``input_fn(body, content_type)`` -> ``predict_fn(data, model)`` ->
``output_fn(prediction, accept)``.

Requests:

- ``image/jpeg``, ``image/png``, ``application/x-image``: the image bytes.
- ``application/json``: ``{"url": "https://...", "top_k": 5, "include_logits": false}``; only
  ``url`` is required. The URL is fetched by `ml.url_fetch` (public http(s) addresses only).

Response (``application/json``)::

    {"predictions": [{"index": 12, "label": "Border collie", "probability": 0.91}, ...],
     "logits": [...]}      # only with "include_logits": true

Bad input raises `InferenceError`, whose ``status_code`` (400, 406, 413, 415) a server maps to a
response with ``{"error": message}``. Limits come from the environment:
``INFERENCE_MAX_BODY_BYTES`` (default 6 MiB, Lambda's and SageMaker's payload limit) and
``INFERENCE_MAX_IMAGE_PIXELS`` (default 40 megapixels; larger images are refused before they are
decoded, which stops decompression bombs).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image

from ml.data import eval_transform
from ml.model import ModelConfig, build_model
from ml.url_fetch import FetchPolicy, UrlFetchError, fetch

IMAGE_CONTENT_TYPES = frozenset({"image/jpeg", "image/png", "application/x-image"})
JSON_CONTENT_TYPE = "application/json"
DECODABLE_FORMATS = frozenset({"JPEG", "PNG"})
DEFAULT_TOP_K = 5
REQUEST_KEYS = frozenset({"url", "top_k", "include_logits"})


class InferenceError(ValueError):
    """A request the handler cannot serve; ``status_code`` is the HTTP status to answer with."""

    def __init__(self, message: str, status_code: int = 400):
        super().__init__(message)
        self.status_code = status_code


def max_body_bytes() -> int:
    return int(os.environ.get("INFERENCE_MAX_BODY_BYTES", 6 * 1024 * 1024))


def _max_image_pixels() -> int:
    return int(os.environ.get("INFERENCE_MAX_IMAGE_PIXELS", 40_000_000))


@dataclass
class LoadedModel:
    model: torch.nn.Module
    class_names: list[str]
    image_size: int
    device: torch.device

    def __post_init__(self) -> None:
        self.transform = eval_transform(self.image_size)


@dataclass(frozen=True)
class PredictionRequest:
    image: torch.Tensor  # (3, H, W) uint8, not yet transformed
    top_k: int = DEFAULT_TOP_K
    include_logits: bool = False


def model_fn(model_dir: str) -> LoadedModel:
    """Load ``model.pth`` and ``model_config.json`` written by ml/train.py."""
    root = Path(model_dir)
    meta = json.loads((root / "model_config.json").read_text())
    config = ModelConfig(
        arch=meta["arch"],
        num_classes=meta["num_classes"],
        hidden=meta["hidden"],
        dropout=meta["dropout"],
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(config, weights="none")
    state = torch.load(root / "model.pth", map_location=device, weights_only=True)
    model.load_state_dict(state)
    model.to(device).eval()
    return LoadedModel(
        model=model, class_names=meta["class_names"], image_size=meta["image_size"], device=device
    )


def decode(data: bytes) -> torch.Tensor:
    """Image bytes -> (3, H, W) uint8 RGB. Refuses non-images, truncated files and images over
    the pixel limit (checked from the header, before decoding)."""
    if not data:
        raise InferenceError("the request body is empty")
    limit = _max_image_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                image_format, (width, height) = header.format, header.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InferenceError(f"image refused as too large: {exc}", 413) from None
    except (UnidentifiedImageError, OSError):
        raise InferenceError("the body is not a JPEG or PNG image") from None
    if image_format not in DECODABLE_FORMATS:
        raise InferenceError(f"unsupported image format {image_format}; send JPEG or PNG", 415)
    if width * height > limit:
        raise InferenceError(f"image is {width}x{height} pixels; the limit is {limit} pixels", 413)
    try:
        return decode_image(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB
        )
    except RuntimeError:
        raise InferenceError(f"the {image_format} image is truncated or corrupt") from None


def _parse_json(body: bytes | str) -> dict:
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InferenceError(f"malformed JSON: {exc}") from None
    if not isinstance(request, dict):
        raise InferenceError('the JSON body must be an object like {"url": "https://..."}')
    unknown = set(request) - REQUEST_KEYS
    if unknown:
        raise InferenceError(f"unknown fields {sorted(unknown)}; allowed: {sorted(REQUEST_KEYS)}")
    if not isinstance(request.get("url"), str) or not request["url"]:
        raise InferenceError('the JSON body needs "url": a non-empty string')
    top_k = request.get("top_k", DEFAULT_TOP_K)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise InferenceError('"top_k" must be a positive integer')
    if not isinstance(request.get("include_logits", False), bool):
        raise InferenceError('"include_logits" must be true or false')
    return request


def input_fn(request_body: bytes | str, request_content_type: str) -> PredictionRequest:
    """Validate and decode one request (see the module docstring for the formats)."""
    content_type = (request_content_type or "").split(";")[0].strip().lower()
    body = request_body.encode() if isinstance(request_body, str) else bytes(request_body)
    if len(body) > max_body_bytes():
        raise InferenceError(f"the body is {len(body)} bytes; the limit is {max_body_bytes()}", 413)
    if content_type in IMAGE_CONTENT_TYPES:
        return PredictionRequest(image=decode(body))
    if content_type == JSON_CONTENT_TYPE:
        request = _parse_json(body)
        try:
            image_bytes = fetch(request["url"], FetchPolicy.from_env())
        except UrlFetchError as exc:
            raise InferenceError(str(exc)) from None
        return PredictionRequest(
            image=decode(image_bytes),
            top_k=request.get("top_k", DEFAULT_TOP_K),
            include_logits=request.get("include_logits", False),
        )
    accepted = ", ".join(sorted(IMAGE_CONTENT_TYPES | {JSON_CONTENT_TYPE}))
    raise InferenceError(
        f"unsupported content type {content_type or '(none)'!r}; use one of {accepted}", 415
    )


def predict_batch(requests: list[PredictionRequest], loaded: LoadedModel) -> list[dict]:
    """Run several requests as one batch (used by servers that micro-batch)."""
    batch = torch.stack([loaded.transform(r.image) for r in requests]).to(loaded.device)
    batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        logits = loaded.model(batch).float().cpu()
    probabilities = logits.softmax(dim=1)
    results = []
    for request, row_logits, row_probabilities in zip(requests, logits, probabilities, strict=True):
        k = min(request.top_k, len(loaded.class_names))
        top = row_probabilities.topk(k)
        result: dict = {
            "predictions": [
                {
                    "index": int(i),
                    "label": loaded.class_names[int(i)],
                    "probability": round(float(p), 6),
                }
                for p, i in zip(top.values, top.indices, strict=True)
            ]
        }
        if request.include_logits:
            result["logits"] = [round(float(v), 6) for v in row_logits]
        results.append(result)
    return results


def predict_fn(input_data: PredictionRequest, model: LoadedModel) -> dict:
    return predict_batch([input_data], model)[0]


def output_fn(prediction: dict, accept: str | None) -> str:
    offered = [
        part.split(";")[0].strip().lower() for part in (accept or "").split(",") if part.strip()
    ]
    if offered and not any(a in (JSON_CONTENT_TYPE, "*/*", "application/*") for a in offered):
        raise InferenceError(f"cannot answer with {accept!r}; accept application/json", 406)
    return json.dumps(prediction)
