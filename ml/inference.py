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

Bad input raises `InferenceError`, whose ``status_code`` (400, 406, 413, 415, 429) a server maps
to a response with ``{"error": message}``. Untrusted images are decoded by Pillow only (it
raises on every malformed input; torchvision's libpng path crashes the process on some), after
the header has been checked against the pixel budget, and truncated images are refused.

Limits (environment), which bound what one request may cost:

- ``INFERENCE_MAX_BODY_BYTES`` (default 6 MiB, Lambda's and SageMaker's payload limit);
- ``INFERENCE_MAX_JSON_BYTES`` (default 64 KiB) for ``application/json`` bodies;
- ``INFERENCE_MAX_IMAGE_PIXELS`` (default 16,777,216 = 4096 x 4096), checked from the header
  before any pixel is decoded. At the limit one decode peaks at about 7 bytes a pixel, 115 MiB
  (Pillow holds 4 bytes a pixel while the 3-byte RGB array handed to the model is filled);
  ``python -m bench.serving_safety`` measures it;
- ``INFERENCE_MAX_CONCURRENT_DECODES`` (default: the number of CPUs, at least 2): decodes
  beyond it wait, so a process never holds more than that many decoded images at once;
- the URL fetch's own limits (see `ml.url_fetch`).
"""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile

from ml.data import eval_transform
from ml.model import ModelConfig, build_model
from ml.url_fetch import FetchPolicy, UrlFetchError, fetch

IMAGE_CONTENT_TYPES = frozenset({"image/jpeg", "image/png", "application/x-image"})
JSON_CONTENT_TYPE = "application/json"
DEFAULT_TOP_K = 5
MAX_TOP_K = 1000
REQUEST_KEYS = frozenset({"url", "top_k", "include_logits"})
# Magic numbers: the two formats we decode, and others we name in a 415 instead of a 400.
_DECODED_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
_OTHER_MAGIC = {
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x00\x00\x01\x00": "ICO",
    b"%PDF": "PDF",
    b"\xff\x0a": "JPEG XL",
    b"\x00\x00\x00\x0cjP  ": "JPEG 2000",
}


class InferenceError(ValueError):
    """A request the handler cannot serve; ``status_code`` is the HTTP status to answer with."""

    def __init__(self, message: str, status_code: int = 400):
        super().__init__(message)
        self.status_code = status_code


def _setting(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def max_body_bytes() -> int:
    return _setting("INFERENCE_MAX_BODY_BYTES", 6 * 1024 * 1024)


def max_image_pixels() -> int:
    return _setting("INFERENCE_MAX_IMAGE_PIXELS", 4096 * 4096)


_decode_slots = threading.BoundedSemaphore(
    _setting("INFERENCE_MAX_CONCURRENT_DECODES", max(2, os.cpu_count() or 2))
)


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
        # Artifacts from before the feature norm have neither the key nor the layer.
        feature_norm=meta.get("feature_norm", False),
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(config, weights="none")
    state = torch.load(root / "model.pth", map_location=device, weights_only=True)
    model.load_state_dict(state)
    model.to(device).eval()
    return LoadedModel(
        model=model, class_names=meta["class_names"], image_size=meta["image_size"], device=device
    )


def sniff_format(data: bytes) -> str:
    """``"JPEG"`` or ``"PNG"`` from the magic number, else an `InferenceError`."""
    for magic, name in _DECODED_MAGIC.items():
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise InferenceError("unsupported image format WEBP; send JPEG or PNG", 415)
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypavif", b"ftypmif1"):
        raise InferenceError("unsupported image format HEIF/AVIF; send JPEG or PNG", 415)
    for magic, name in _OTHER_MAGIC.items():
        if data.startswith(magic):
            raise InferenceError(f"unsupported image format {name}; send JPEG or PNG", 415)
    raise InferenceError("the body is not a JPEG or PNG image")


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples a pixel
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def check_png(data: bytes, pixel_limit: int) -> None:
    """The checks libpng makes and Pillow skips, so that what Pillow accepts libpng would too:
    every chunk inside the file with a correct CRC; IHDR first and well formed; a palette
    (3n bytes) before the data of a palette image; IEND last; and the compressed data inflating
    to exactly the rows the header promises (Pillow pads too little data with black). The
    header's pixel count is checked before anything is inflated."""
    corrupt = InferenceError("the PNG image is truncated or corrupt")
    view = memoryview(data)
    position, header, palette, idat = 8, None, False, []
    while position + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kind = bytes(view[position + 4 : position + 8])
        end = position + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            raise corrupt
        (crc,) = struct.unpack_from(">I", data, end - 4)
        body = view[position + 8 : end - 4]
        if zlib.crc32(view[position + 4 : end - 4]) != crc or (header is None) != (kind == b"IHDR"):
            raise corrupt
        if kind == b"IHDR":
            if length != 13:
                raise corrupt
            header = struct.unpack(">IIBBBBB", body)
            width, height, _depth, _color, compression, filtering, interlace = header
            if compression != 0 or filtering != 0 or interlace not in (0, 1):
                raise corrupt
            _check_pixels(width, height, pixel_limit)
        elif kind == b"PLTE":
            if length % 3 or length > 768:
                raise corrupt
            palette = True
        elif kind == b"IDAT":
            if header[3] == 3 and not palette:
                raise corrupt
            idat.append(body)
        elif kind == b"IEND":
            if not idat:
                raise corrupt
            _check_png_data(header, idat)
            return
        position = end
    raise corrupt


def _check_pixels(width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise InferenceError(
            f"image too large: {width}x{height} pixels, over the limit of {limit} pixels", 413
        )


def _png_data_size(header: tuple) -> int | None:
    width, height, depth, color, _, _, interlace = header
    if color not in _PNG_CHANNELS:
        return None  # an invalid colour type; Pillow refuses it
    bits = depth * _PNG_CHANNELS[color]
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    size = 0
    for x0, y0, dx, dy in passes:
        columns, lines = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if columns > 0 and lines > 0:
            size += lines * (1 + -(-columns * bits // 8))
    return size


def _check_png_data(header: tuple, idat: list[memoryview]) -> None:
    """Inflate the image data in 1 MiB steps (never holding it) and compare with the header."""
    expected = _png_data_size(header)
    if expected is None:
        return
    inflater, total = zlib.decompressobj(), 0
    try:
        for part in idat:
            pending = part
            while pending and total <= expected:
                total += len(inflater.decompress(pending, 1 << 20))
                pending = inflater.unconsumed_tail
            if total > expected:
                break
    except zlib.error:
        raise InferenceError("the PNG image data is corrupt") from None
    if total < expected:
        raise InferenceError("the PNG image is truncated: it has too little image data")


def decode(data: bytes) -> torch.Tensor:
    """Image bytes -> (3, H, W) uint8 RGB.

    Refuses non-images, images over the pixel budget (from the header, before decoding),
    truncated and corrupt files. Only Pillow's decoder sees the bytes: every decoder failure is
    an exception there, never a crash of the process.
    """
    if not data:
        raise InferenceError("the request body is empty")
    image_format = sniff_format(data)
    limit = max_image_pixels()
    if image_format == "PNG":
        check_png(data, limit)
    # Pillow raises when a file ends early unless this global was set; ml.data sets it for
    # damaged training files in the training process only. Never serve with it set.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set in a serving process")
    with _decode_slots:
        try:
            with Image.open(io.BytesIO(data), formats=(image_format,)) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise InferenceError(f"the {image_format} image has no pixels")
                _check_pixels(width, height, limit)
                image.load()
                rgb = _to_rgb(image)
        except InferenceError:
            raise
        except Image.DecompressionBombError:
            raise InferenceError("image refused as too large (decompression bomb)", 413) from None
        except MemoryError:
            raise InferenceError("image too large to decode", 413) from None
        except Exception:
            # OSError (truncated, broken stream), SyntaxError (broken chunk), ValueError
            # (metadata that inflates past Pillow's limit), struct.error, EOFError, ...
            raise InferenceError(f"the {image_format} image is truncated or corrupt") from None
    return torch.from_numpy(rgb).permute(2, 0, 1)


def _to_rgb(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 from any mode JPEG and PNG decode to (grey, 16-bit, palette, alpha,
    CMYK), dropping alpha as torchvision's ``ImageReadMode.RGB`` does."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey PNG
        grey = (np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "RGB":
        return _pixels(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow wants palette transparency resolved first
    rgb = image.convert("RGB")
    image.close()  # free the decoded pixels before the array copy: one image less at the peak
    return _pixels(rgb)


def _pixels(image: Image.Image) -> np.ndarray:
    """An RGB image as an (H, W, 3) array, copied about 1 MiB of rows at a time: np.asarray
    goes through tobytes(), which holds the whole image twice while it joins its parts."""
    width, height = image.size
    out = np.empty((height, width, 3), np.uint8)
    step = max(1, (1 << 20) // (width * 3))
    for top in range(0, height, step):
        band = image.crop((0, top, width, min(height, top + step)))
        out[top : top + band.height] = np.asarray(band)
    return out


def _reject_invalid_unicode(value: object) -> None:
    # json.loads accepts lone surrogates ("\ud800"); they cannot be encoded again.
    try:
        if isinstance(value, str):
            value.encode("utf-8")
    except UnicodeEncodeError:
        raise InferenceError("the JSON body contains invalid Unicode (a lone surrogate)") from None


def parse_json_request(body: bytes) -> dict:
    """The ``{"url", "top_k", "include_logits"}`` request, or `InferenceError`; never anything
    else, whatever the bytes (deep nesting, huge numbers, invalid Unicode)."""
    limit = _setting("INFERENCE_MAX_JSON_BYTES", 64 * 1024)
    if len(body) > limit:
        raise InferenceError(f"the JSON body is {len(body)} bytes; the limit is {limit}", 413)
    try:
        request = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InferenceError(f"malformed JSON: {exc.msg} at position {exc.pos}") from None
    except UnicodeDecodeError:
        raise InferenceError("malformed JSON: the body is not UTF-8") from None
    except RecursionError:
        raise InferenceError("malformed JSON: nested too deeply") from None
    except ValueError:  # integers over Python's digit limit
        raise InferenceError("malformed JSON: a number is too large") from None
    if not isinstance(request, dict):
        raise InferenceError('the JSON body must be an object like {"url": "https://..."}')
    unknown = set(request) - REQUEST_KEYS
    for key in request:
        _reject_invalid_unicode(key)
    if unknown:
        raise InferenceError(f"unknown fields {sorted(unknown)}; allowed: {sorted(REQUEST_KEYS)}")
    if not isinstance(request.get("url"), str) or not request["url"]:
        raise InferenceError('the JSON body needs "url": a non-empty string')
    _reject_invalid_unicode(request["url"])
    top_k = request.get("top_k", DEFAULT_TOP_K)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise InferenceError(f'"top_k" must be an integer from 1 to {MAX_TOP_K}')
    if not isinstance(request.get("include_logits", False), bool):
        raise InferenceError('"include_logits" must be true or false')
    return request


def input_fn(request_body: bytes | str, request_content_type: str) -> PredictionRequest:
    """Validate and decode one request (see the module docstring for the formats)."""
    content_type = (request_content_type or "").split(";")[0].strip().lower()
    if isinstance(request_body, str):
        request_body = request_body.encode("utf-8", errors="surrogatepass")
    body = bytes(request_body)
    if len(body) > max_body_bytes():
        raise InferenceError(f"the body is {len(body)} bytes; the limit is {max_body_bytes()}", 413)
    if content_type in IMAGE_CONTENT_TYPES:
        return PredictionRequest(image=decode(body))
    if content_type == JSON_CONTENT_TYPE:
        request = parse_json_request(body)
        try:
            image_bytes = fetch(request["url"], FetchPolicy.from_env())
        except UrlFetchError as exc:
            raise InferenceError(str(exc), exc.status_code) from None
        return PredictionRequest(
            image=decode(image_bytes),
            top_k=request.get("top_k", DEFAULT_TOP_K),
            include_logits=request.get("include_logits", False),
        )
    accepted = ", ".join(sorted(IMAGE_CONTENT_TYPES | {JSON_CONTENT_TYPE}))
    raise InferenceError(
        f"unsupported content type {content_type[:100] or '(none)'!r}; use one of {accepted}", 415
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
