"""Write the hostile-input corpus (see README.md beside this file).

    python -m tests.corpus.build

Every case carries the status class a correct server answers with: ``2xx`` for valid input,
``4xx`` for input the caller got wrong, ``2xx|4xx`` only for byte mutations that may still
decode to a (damaged) picture. The files are committed: tests read them, never this script,
so a change in how they are generated is a reviewed diff of the corpus.
"""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import zlib
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"


# --- PNG building blocks ------------------------------------------------------------------


def chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def ihdr(width: int, height: int, depth: int = 8, color: int = 2, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace))


def rows(width: int, height: int, channels: int = 3, filter_byte: int = 0, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return b"".join(
        bytes([filter_byte]) + bytes(rng.randrange(256) for _ in range(width * channels))
        for _ in range(height)
    )


SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND = chunk(b"IEND", b"")


def png(
    width: int = 16,
    height: int = 16,
    raw: bytes | None = None,
    idat: bytes | None = None,
    before: bytes = b"",
    header: bytes | None = None,
    end: bytes = IEND,
) -> bytes:
    raw = rows(width, height) if raw is None else raw
    idat = zlib.compress(raw) if idat is None else idat
    head = ihdr(width, height) if header is None else header
    return SIGNATURE + head + before + chunk(b"IDAT", idat) + end


def pillow(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int = 96, height: int = 72, mode: str = "RGB", seed: int = 1) -> Image.Image:
    """A smooth synthetic picture (compresses like a photo, not like noise)."""
    image = Image.linear_gradient("L").resize((width, height))
    rng = random.Random(seed)
    bands = [image.rotate(rng.randrange(360)) for _ in range(3)]
    return Image.merge("RGB", bands).convert(mode)


def patch_sof(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header claiming ``width`` x ``height``."""
    data = bytearray(jpeg)
    for marker in (b"\xff\xc0", b"\xff\xc2", b"\xff\xc1"):
        at = data.find(marker)
        if at > 0:
            data[at + 5 : at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise ValueError("no frame header")


def flip_bits(data: bytes, start: int, seed: int, count: int = 8) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(count):
        at = rng.randrange(start, len(out) - 2)
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def png_cases() -> list[tuple[str, bytes, str]]:
    w, h = 16, 16
    good = png(w, h)
    compressed = zlib.compress(rows(w, h))
    cases = [("png-valid-rgb", good, "2xx")]
    for value in (5, 6, 17, 128, 255):
        cases.append(
            (f"png-bad-filter-{value}-first-row", png(raw=rows(w, h, filter_byte=value)), "4xx")
        )
    last_bad = rows(w, h)[: -(w * 3 + 1)] + bytes([9]) + bytes(w * 3)
    cases.append(("png-bad-filter-last-row", png(raw=last_bad), "4xx"))
    adler = compressed[:-4] + bytes(b ^ 0xFF for b in compressed[-4:])
    cases.append(("png-bad-zlib-checksum", png(idat=adler), "4xx"))
    block = bytes([compressed[0], compressed[1], compressed[2] | 0b110]) + compressed[3:]
    cases.append(("png-bad-zlib-block-type", png(idat=block), "4xx"))
    cases.append(("png-bad-zlib-header", png(idat=b"\x78\x00" + compressed[2:]), "4xx"))
    cases.append(("png-bad-zlib-method", png(idat=b"\x7f\x9c" + compressed[2:]), "4xx"))
    for fraction in (0.1, 0.5, 0.9):
        short = zlib.compress(rows(w, h)[: int(len(rows(w, h)) * fraction)])
        cases.append((f"png-too-little-idat-{int(fraction * 100)}pct", png(idat=short), "4xx"))
        cut = compressed[: int(len(compressed) * fraction)]
        cases.append((f"png-idat-stream-cut-{int(fraction * 100)}pct", png(idat=cut), "4xx"))
    cases.append(("png-empty-idat", png(idat=b""), "4xx"))
    cases.append(("png-no-idat", SIGNATURE + ihdr(w, h) + IEND, "4xx"))
    cases.append(("png-no-iend", good[: -len(IEND)], "4xx"))
    cases.append(("png-signature-only", SIGNATURE, "4xx"))
    cases.append(("png-truncated-in-ihdr", good[:20], "4xx"))
    for at in (40, 60, len(good) // 2, len(good) - 13):
        cases.append((f"png-truncated-at-{at}", good[:at], "4xx"))
    bad_crc = SIGNATURE + chunk(b"IHDR", ihdr(w, h)[8:-4], crc=0) + good[33:]
    cases.append(("png-bad-ihdr-crc", bad_crc, "4xx"))
    cases.append(
        ("png-bad-idat-crc", SIGNATURE + ihdr(w, h) + chunk(b"IDAT", compressed, 1) + IEND, "4xx")
    )
    cases.append(("png-ihdr-not-first", SIGNATURE + chunk(b"tEXt", b"a\x00b") + good[8:], "4xx"))
    cases.append(("png-zero-width", png(header=ihdr(0, h)), "4xx"))
    cases.append(("png-zero-height", png(header=ihdr(w, 0)), "4xx"))
    for depth, color in ((4, 2), (3, 0), (16, 3), (1, 6), (8, 1), (8, 5), (8, 7)):
        cases.append(
            (
                f"png-invalid-depth-{depth}-color-{color}",
                png(header=ihdr(w, h, depth, color)),
                "4xx",
            )
        )
    cases.append(("png-interlace-method-2", png(header=ihdr(w, h, interlace=2)), "4xx"))
    odd = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 1, 0, 0))
    cases.append(("png-compression-method-1", png(header=odd), "4xx"))
    odd = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 1, 0))
    cases.append(("png-filter-method-1", png(header=odd), "4xx"))
    cases.append(
        ("png-ihdr-too-short", SIGNATURE + chunk(b"IHDR", b"\x00\x00\x00\x10") + IEND, "4xx")
    )
    for width, height in (
        (30000, 30000),
        (65535, 65535),
        (2**31 - 1, 1),
        (1, 2**31 - 1),
        (5000, 5000),
    ):
        cases.append(
            (
                f"png-claims-{width}x{height}",
                png(header=ihdr(width, height), idat=compressed),
                "4xx",
            )
        )
    huge = struct.pack(">I", 0x7FFFFFF0) + b"IDAT" + compressed
    cases.append(("png-chunk-length-past-end", SIGNATURE + ihdr(w, h) + huge, "4xx"))
    cases.append(
        (
            "png-chunk-length-over-2g",
            SIGNATURE + ihdr(w, h) + struct.pack(">I", 0xFFFFFFFF) + b"IDAT",
            "4xx",
        )
    )
    icc = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)
    cases.append(
        ("png-iccp-inflates-64mib", png(before=chunk(b"iCCP", b"icc\x00\x00" + icc)), "4xx")
    )
    ztxt = zlib.compress(b"A" * (4 * 1024 * 1024), 9)
    cases.append(("png-ztxt-inflates-4mib", png(before=chunk(b"zTXt", b"k\x00\x00" + ztxt)), "4xx"))
    itxt = zlib.compress(b"B" * (4 * 1024 * 1024), 9)
    cases.append(
        (
            "png-itxt-inflates-4mib",
            png(before=chunk(b"iTXt", b"k\x00\x01\x00\x00\x00" + itxt)),
            "4xx",
        )
    )
    # A broken ancillary chunk is a warning in libpng, and the picture is fine.
    cases.append(("png-iccp-bad-zlib", png(before=chunk(b"iCCP", b"icc\x00\x00garbage")), "2xx"))
    # Palette images.
    palette_raw = b"".join(b"\x00" + bytes(range(w)) for _ in range(h))
    p_head = ihdr(w, h, 8, 3)
    plte = chunk(b"PLTE", bytes(range(48)))
    cases.append(("png-palette-valid", png(raw=palette_raw, header=p_head, before=plte), "2xx"))
    cases.append(("png-palette-missing-plte", png(raw=palette_raw, header=p_head), "4xx"))
    cases.append(
        (
            "png-palette-plte-length-not-3n",
            png(raw=palette_raw, header=p_head, before=chunk(b"PLTE", b"\x00" * 10)),
            "4xx",
        )
    )
    cases.append(
        (
            "png-palette-trns-too-long",
            png(raw=palette_raw, header=p_head, before=plte + chunk(b"tRNS", b"\x00" * 300)),
            "2xx|4xx",
        )
    )
    # Other valid colour types and depths, made by Pillow.
    base = photo(40, 30)
    for mode in ("L", "LA", "RGBA", "P", "1", "I;16"):
        cases.append(
            (
                f"png-valid-mode-{mode.replace(';', '')}",
                pillow(
                    base.convert(mode) if mode != "I;16" else base.convert("L").convert("I;16"),
                    "PNG",
                ),
                "2xx",
            )
        )
    cases.append(
        (
            "png-valid-16bit-rgb",
            png(
                8, 8, raw=b"".join(b"\x00" + bytes(48) for _ in range(8)), header=ihdr(8, 8, 16, 2)
            ),
            "2xx",
        )
    )
    cases.append(
        (
            "png-valid-split-idat",
            SIGNATURE
            + ihdr(w, h)
            + b"".join(chunk(b"IDAT", compressed[i : i + 7]) for i in range(0, len(compressed), 7))
            + IEND,
            "2xx",
        )
    )
    cases.append(("png-valid-data-after-iend", good + b"trailing bytes", "2xx"))
    cases.append(("png-valid-ancillary-unknown", png(before=chunk(b"zzZz", b"whatever")), "2xx"))
    # Byte flips inside the compressed data, CRCs made right again so only zlib can tell.
    for seed in range(10):
        flipped = flip_bits(compressed, 2, seed, count=4)
        cases.append((f"png-idat-bitflips-{seed}", png(idat=flipped), "2xx|4xx"))
    return cases


def jpeg_cases() -> list[tuple[str, bytes, str]]:
    base = photo(96, 72)
    baseline = pillow(base, "JPEG", quality=90)
    progressive = pillow(base, "JPEG", quality=90, progressive=True)
    cases = [
        ("jpeg-valid-baseline", baseline, "2xx"),
        ("jpeg-valid-progressive", progressive, "2xx"),
        ("jpeg-valid-grey", pillow(base.convert("L"), "JPEG"), "2xx"),
        ("jpeg-valid-cmyk", pillow(base.convert("CMYK"), "JPEG"), "2xx"),
        ("jpeg-valid-444", pillow(base, "JPEG", subsampling=0), "2xx"),
        ("jpeg-valid-optimized", pillow(base, "JPEG", optimize=True), "2xx"),
        ("jpeg-valid-restart-markers", pillow(base, "JPEG", restart_marker_blocks=1), "2xx"),
        ("jpeg-valid-1x1", pillow(photo(1, 1), "JPEG"), "2xx"),
        ("jpeg-valid-wide-4000x2", pillow(photo(4000, 2), "JPEG"), "2xx"),
        ("jpeg-valid-trailing-bytes", baseline + b"\x00" * 100, "2xx"),
    ]
    for name, data in (("baseline", baseline), ("progressive", progressive)):
        for percent in (2, 10, 25, 50, 75, 90, 99):
            cut = data[: max(4, len(data) * percent // 100)]
            cases.append((f"jpeg-{name}-truncated-{percent}pct", cut, "4xx"))
        cases.append((f"jpeg-{name}-no-eoi", data[:-2], "4xx"))
    big = pillow(photo(600, 600), "JPEG")
    for width, height in ((6000, 6000), (4000, 4000), (65535, 65535), (65535, 1), (4096, 4097)):
        claim = patch_sof(big, width, height)
        cases.append((f"jpeg-claims-{width}x{height}-truncated", claim[: len(claim) // 2], "4xx"))
    cases.append(("jpeg-claims-0x0", patch_sof(baseline, 0, 0), "4xx"))
    cases.append(("jpeg-claims-0-width", patch_sof(baseline, 0, 72), "4xx"))
    cases.append(("jpeg-soi-only", b"\xff\xd8", "4xx"))
    cases.append(("jpeg-soi-eoi", b"\xff\xd8\xff\xd9", "4xx"))
    cases.append(
        (
            "jpeg-soi-garbage",
            b"\xff\xd8\xff" + bytes(random.Random(3).randrange(256) for _ in range(500)),
            "4xx",
        )
    )
    sos = baseline.find(b"\xff\xda")
    cases.append(("jpeg-no-scan", baseline[:sos] + b"\xff\xd9", "4xx"))
    dht = baseline.find(b"\xff\xc4")
    cases.append(
        ("jpeg-dht-length-past-end", baseline[: dht + 2] + b"\xff\xf0" + baseline[dht + 4 :], "4xx")
    )
    cases.append(
        ("jpeg-dht-length-zero", baseline[: dht + 2] + b"\x00\x00" + baseline[dht + 4 :], "4xx")
    )
    dqt = baseline.find(b"\xff\xdb")
    bad_table = bytearray(baseline)
    bad_table[dqt + 4] = 0x0F  # quantisation table id 15 (0-3 exist)
    cases.append(("jpeg-dqt-bad-table-id", bytes(bad_table), "4xx"))
    sof = baseline.find(b"\xff\xc0")
    components = bytearray(baseline)
    components[sof + 9] = 0  # zero components
    cases.append(("jpeg-sof-zero-components", bytes(components), "4xx"))
    precision = bytearray(baseline)
    precision[sof + 4] = 3  # 3-bit samples
    cases.append(("jpeg-sof-precision-3", bytes(precision), "4xx"))
    for marker, name in ((0xC3, "lossless"), (0xC9, "arithmetic"), (0xCF, "arith-lossless")):
        changed = bytearray(baseline)
        changed[sof + 1] = marker
        cases.append((f"jpeg-sof-{name}", bytes(changed), "2xx|4xx"))
    cases.append(
        (
            "jpeg-exif-garbage",
            baseline[:2] + b"\xff\xe1\x00\x10Exif\x00\x00" + b"\xff" * 8 + baseline[2:],
            "2xx|4xx",
        )
    )
    cases.append(
        ("jpeg-marker-length-1", baseline[:2] + b"\xff\xe0\x00\x01" + baseline[2:], "2xx|4xx")
    )
    for seed in range(10):
        cases.append((f"jpeg-scan-bitflips-{seed}", flip_bits(baseline, sos + 20, seed), "2xx|4xx"))
    for seed in range(6):
        cases.append(
            (
                f"jpeg-header-bitflips-{seed}",
                flip_bits(baseline[:sos], 2, seed, 3) + baseline[sos:],
                "2xx|4xx",
            )
        )
    return cases


def other_cases() -> list[tuple[str, bytes, str]]:
    base = photo(32, 24)
    rng = random.Random(7)
    cases = [
        ("other-gif", pillow(base, "GIF"), "4xx"),
        ("other-bmp", pillow(base, "BMP"), "4xx"),
        ("other-tiff", pillow(base, "TIFF"), "4xx"),
        ("other-tiff-big-endian", b"MM\x00*" + bytes(60), "4xx"),
        ("other-webp-header", b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(40), "4xx"),
        ("other-ico", pillow(base, "ICO"), "4xx"),
        ("other-pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "4xx"),
        ("other-heic-header", b"\x00\x00\x00\x18ftypheic" + bytes(40), "4xx"),
        ("other-avif-header", b"\x00\x00\x00\x1cftypavif" + bytes(40), "4xx"),
        ("other-jpeg2000", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(40), "4xx"),
        (
            "other-svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>',
            "4xx",
        ),
        ("other-html", b"<html><body>not a dog</body></html>", "4xx"),
        ("other-zip", b"PK\x03\x04" + bytes(60), "4xx"),
        ("other-gzip", zlib.compress(b"x" * 1000), "4xx"),
        ("other-text", b"hello, world", "4xx"),
        ("other-random-bytes", bytes(rng.randrange(256) for _ in range(2048)), "4xx"),
        ("other-nul-bytes", bytes(1024), "4xx"),
        ("other-one-byte", b"\xff", "4xx"),
        ("other-png-in-jpeg-clothes", b"\xff\xd8\xff" + png()[3:], "4xx"),
        ("other-json", b'{"url": "http://example.com/dog.jpg"}', "4xx"),
    ]
    return cases


def write_images() -> list[dict]:
    IMAGES.mkdir(exist_ok=True)
    for old in IMAGES.iterdir():
        old.unlink()
    manifest = []
    for name, data, expect in png_cases() + jpeg_cases() + other_cases():
        extension = {"png": "png", "jpeg": "jpg"}.get(name.split("-")[0], "bin")
        file = f"{name}.{extension}"
        (IMAGES / file).write_bytes(data)
        content_type = {"png": "image/png", "jpg": "image/jpeg"}.get(extension, "image/jpeg")
        manifest.append(
            {"name": name, "file": file, "content_type": content_type, "expect": expect}
        )
    return manifest


# --- HTTP requests to the model server ------------------------------------------------------

# Hosts are refused in any spelling; the corpus's own image server runs on 127.0.0.2, the only
# address the test allows, so every other loopback spelling must still be refused.
REFUSED_HOSTS = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "017700000001",
    "127.000.000.001",
    "0",
    "0.0.0.0",
    "localhost",
    "LOCALHOST.",
    "localhost.",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",
    "[::ffff:0:127.0.0.1]",
    "[2002:7f00:1::1]",
    "[2002:a9fe:a9fe::1]",
    "[2002:0a00:0001::]",
    "[64:ff9b::127.0.0.1]",
    "[64:ff9b::a9fe:a9fe]",
    "[64:ff9b:1::a00:1]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    "[2001:0:4136:e378:8000:63bf:5601:5601]",
    "169.254.169.254",
    "169.254.170.2",
    "[fd00:ec2::254]",
    "[fe80::1]",
    "[fc00::1]",
    "[ff02::1]",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "100.64.0.1",
    "192.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "[2001:db8::1]",
    "[::ffff:169.254.169.254]",
    "0251.0376.0251.0376",
    "2852039166",
    "0xa9fea9fe",
]
MALFORMED_URLS = [
    "http://[::1",
    "http://[evil.com]/",
    "http://[127.0.0.1]/",
    f"http://{'a' * 64}.com/",
    f"http://{'a.' * 130}com/",
    "http://a..b/",
    "http://./",
    "http://../",
    "http://-/",
    "http://a b/",
    "http://exa mple.com/",
    "http://example.com:0/",
    "http://example.com:65536/",
    "http://example.com:-1/",
    "http://example.com:abc/",
    "http://example.com:99999999999/",
    "http://:80/",
    "http:///dog.jpg",
    "http:dog.jpg",
    "//example.com/dog.jpg",
    "dog.jpg",
    "",
    "http://",
    "https://",
    "http://@/",
    "http://user@/",
    "http://%31%32%37.0.0.1/",
    "http://exa%00mple.com/",
    "http://example.com/\r\nX-Injected: 1",
    "http://example.com/\n",
    "http://example.com/\t",
    "http://\u0000/",
    "http://exa\u200bmple.com/",
    "http://[::1%25lo]/",
    "http://[fe80::1%eth0]/",
    "http://[::1]]/",
    "http://[[::1]]/",
    "http://example.com\\@evil/",
    "file:///etc/passwd",
    "ftp://example.com/dog.jpg",
    "gopher://127.0.0.1:6379/_INFO",
    "dict://127.0.0.1:11211/stats",
    "data:image/png;base64,iVBORw0KGgo=",
    "javascript:alert(1)",
    "jar:http://example.com/a.jar!/",
    "ldap://127.0.0.1/",
    "ws://example.com/",
    "x" * 3000,
    "http://" + "a" * 2100 + ".com/",
    "http://\ud800.com/",
    "http://example.com/\udfff",
]


def http_requests() -> list[dict]:
    cases = []

    def add(name, body, content_type="application/json", expect="4xx", pad=0, **headers):
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        cases.append(
            {
                "pad": pad,
                "name": name,
                "method": "POST",
                "path": "/invocations",
                "headers": {"Content-Type": content_type, **headers}
                if content_type is not None
                else headers,
                "body_b64": base64.b64encode(raw).decode(),
                "expect": expect,
            }
        )

    for index, host in enumerate(REFUSED_HOSTS):
        add(f"url-refused-host-{index:02d}", json.dumps({"url": f"http://{host}/dog.jpg"}))
    for index, url in enumerate(MALFORMED_URLS):
        add(f"url-malformed-{index:02d}", json.dumps({"url": url}))
    for index, port in enumerate((22, 6379, 8080, 1)):
        add(f"url-refused-port-variant-{index}", json.dumps({"url": f"http://127.0.0.1:{port}/"}))
    json_bodies = {
        "json-truncated": '{"url": ',
        "json-empty": "",
        "json-whitespace": "   \n",
        "json-null": "null",
        "json-array": '["http://example.com/dog.jpg"]',
        "json-string": '"http://example.com/dog.jpg"',
        "json-number": "42",
        "json-true": "true",
        "json-empty-object": "{}",
        "json-unknown-field": '{"link": "http://example.com"}',
        "json-url-null": '{"url": null}',
        "json-url-number": '{"url": 42}',
        "json-url-array": '{"url": ["http://example.com"]}',
        "json-url-object": '{"url": {"href": "http://example.com"}}',
        "json-url-empty": '{"url": ""}',
        "json-top-k-string": '{"url": "http://127.0.0.2/x", "top_k": "3"}',
        "json-top-k-zero": '{"url": "http://127.0.0.2/x", "top_k": 0}',
        "json-top-k-negative": '{"url": "http://127.0.0.2/x", "top_k": -5}',
        "json-top-k-float": '{"url": "http://127.0.0.2/x", "top_k": 2.5}',
        "json-top-k-bool": '{"url": "http://127.0.0.2/x", "top_k": true}',
        "json-top-k-huge": '{"url": "http://127.0.0.2/x", "top_k": 1e400}',
        "json-top-k-nan": '{"url": "http://127.0.0.2/x", "top_k": NaN}',
        "json-top-k-infinity": '{"url": "http://127.0.0.2/x", "top_k": -Infinity}',
        "json-top-k-over-max": '{"url": "http://127.0.0.2/x", "top_k": 1001}',
        "json-top-k-4000-digits": '{"url": "http://127.0.0.2/x", "top_k": ' + "9" * 4000 + "}",
        "json-int-5000-digits": '{"url": "http://127.0.0.2/x", "top_k": ' + "9" * 5000 + "}",
        "json-int-5000-digits-top-level": "1" * 5000,
        "json-logits-string": '{"url": "http://127.0.0.2/x", "include_logits": "yes"}',
        "json-nested-100": "[" * 100 + "]" * 100,
        "json-nested-1000": "[" * 1000 + "]" * 1000,
        "json-nested-1000-objects": '{"a":' * 1000 + "1" + "}" * 1000,
        "json-nested-1000-in-url": '{"url": ' + "[" * 1000 + "]" * 1000 + "}",
        "json-nested-unclosed-20000": "[" * 20000,
        "json-lone-surrogate-url": '{"url": "http://example.com/\\ud800"}',
        "json-lone-surrogate-key": '{"\\udfff": 1}',
        "json-surrogate-pair-ok-but-private": '{"url": "http://127.0.0.1/\\ud83d\\udc36"}',
        "json-raw-surrogate-bytes": b'{"url": "http://example.com/\xed\xa0\x80"}',
        "json-invalid-utf8": b'{"url": "http://example.com/\xff\xfe"}',
        "json-utf16": '{"url": "http://127.0.0.1/"}'.encode("utf-16"),
        "json-bom-private": b"\xef\xbb\xbf" + b'{"url": "http://127.0.0.1/"}',
        "json-duplicate-keys": '{"url": "http://127.0.0.2/x", "url": "http://127.0.0.1/"}',
        "json-trailing-garbage": '{"url": "http://127.0.0.1/"} trailing',
        "json-single-quotes": "{'url': 'http://example.com'}",
        "json-comment": '{"url": "http://example.com" /* hi */}',
        "json-nul-byte": '{"url": "http://example.com/\u0000"}',
        "json-control-characters": '{"url": "http://example.com/\x01"}',
        "json-many-keys": "{" + ",".join(f'"k{i}": {i}' for i in range(3000)) + "}",
        "json-huge-string": '{"url": "' + "a" * 70000 + '"}',
        "json-huge-array": "[" + ",".join("1" for _ in range(40000)) + "]",
    }
    for name, body in json_bodies.items():
        add(name, body)
    # Content types and Accept headers, with a good and a bad body.
    jpeg = (IMAGES / "jpeg-valid-baseline.jpg").read_bytes()
    png_good = (IMAGES / "png-valid-rgb.png").read_bytes()
    for index, content_type in enumerate(
        [
            "image/gif",
            "text/plain",
            "",
            "application/octet-stream",
            "multipart/form-data; boundary=x",
            "image/*",
            "application/x-www-form-urlencoded",
            "image/jpeg2",
            "x" * 4000,
            "application/json+x",
            "application/xml",
        ]
    ):
        add(f"content-type-unsupported-{index:02d}", jpeg, content_type)
    add("content-type-missing", jpeg, None)
    for index, content_type in enumerate(
        ["IMAGE/JPEG", "image/jpeg; charset=binary", " image/jpeg ", "application/x-image"]
    ):
        add(f"content-type-variant-ok-{index}", jpeg, content_type, "2xx")
    add("content-type-jpeg-carrying-png", png_good, "image/jpeg", "2xx")
    add("content-type-png-carrying-jpeg", jpeg, "image/png", "2xx")
    add("content-type-png-carrying-json", b'{"url": "http://127.0.0.1/"}', "image/png")
    add("content-type-json-carrying-jpeg", jpeg, "application/json")
    for index, accept in enumerate(
        ["text/csv", "image/png", "text/html, text/plain", "application/xml;q=1"]
    ):
        add(f"accept-unanswerable-{index}", jpeg, "image/jpeg", "4xx", Accept=accept)
    for index, accept in enumerate(
        [
            "*/*",
            "application/json",
            "application/*",
            "text/csv, application/json;q=0.1",
            ",,,",
            "application/json; charset=utf-8",
        ]
    ):
        add(f"accept-answerable-{index}", jpeg, "image/jpeg", "2xx", Accept=accept)
    add("body-empty-jpeg", b"", "image/jpeg")
    # "pad": that many 0x61 bytes ("a") appended to the body when the case is loaded.
    add("body-over-limit", b"\xff\xd8\xff", "image/jpeg", pad=7 * 1024 * 1024)
    add("body-over-limit-json", b'{"url": "', "application/json", pad=7 * 1024 * 1024)
    for path, method, expect in (
        ("/nope", "POST", "4xx"),
        ("/invocations", "GET", "4xx"),
        ("/ping", "POST", "4xx"),
        ("/ping", "DELETE", "4xx"),
        ("/invocations", "PUT", "4xx"),
        ("/../../etc/passwd", "GET", "4xx"),
        ("/invocations/", "POST", "4xx"),
        ("/%2e%2e/ping", "GET", "4xx"),
        ("/ping", "GET", "2xx"),
        ("/execution-parameters", "GET", "4xx"),
        ("/invocations?x=1", "OPTIONS", "4xx"),
    ):
        cases.append(
            {
                "name": f"route-{method.lower()}-{path.strip('/').replace('/', '_') or 'root'}",
                "method": method,
                "path": path,
                "headers": {"Content-Type": "image/jpeg"},
                "body_b64": base64.b64encode(jpeg if method in ("POST", "PUT") else b"").decode(),
                "expect": expect,
            }
        )
    return cases


def raw_requests() -> list[dict]:
    """Bytes no well-behaved client sends; uvicorn's HTTP parser answers some of them itself
    (with a plain-text 4xx), so only the status class is expected."""
    raw = {
        "raw-content-length-letters": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: abc\r\n\r\n",
        "raw-content-length-negative": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: -1\r\n\r\n",
        "raw-content-length-superscript": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: \xb2\r\n\r\n",
        "raw-content-length-5000-digits": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: "
        + b"9" * 5000
        + b"\r\n\r\n",
        "raw-content-length-twice": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "raw-chunked-bad-size": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
        "raw-chunked-not-image": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        "raw-header-without-colon": b"POST /invocations HTTP/1.1\r\nHost: x\r\nBroken header\r\nContent-Length: 0\r\n\r\n",
        "raw-header-64kib": b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"a" * 65536
        + b"\r\nContent-Length: 0\r\n\r\n",
        "raw-request-line-garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello\r\n\r\n",
        "raw-request-line-no-version": b"POST /invocations\r\n\r\n",
        "raw-http-2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "raw-method-lowercase": b"post /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "raw-absolute-uri-elsewhere": b"POST http://169.254.169.254/latest HTTP/1.1\r\nHost: 169.254.169.254\r\nContent-Type: image/jpeg\r\nContent-Length: 1\r\n\r\nx",
        "raw-nul-in-path": b"GET /pi\x00ng HTTP/1.1\r\nHost: x\r\n\r\n",
        "raw-content-type-nul": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\x00\r\nContent-Length: 1\r\n\r\nx",
        "raw-content-type-latin1": b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jp\xe9g\r\nContent-Length: 1\r\n\r\nx",
    }
    return [
        {"name": name, "raw_b64": base64.b64encode(data).decode(), "expect": "4xx"}
        for name, data in raw.items()
    ]


def url_cases(images: list[dict]) -> list[dict]:
    """URLs served by the test's hostile image server at ``{host}`` (http://127.0.0.2:PORT)."""
    cases = [
        {
            "name": f"url-image-{image['name']}",
            "url": "{host}/image/" + image["file"],
            "expect": image["expect"],
        }
        for image in images
    ]
    hostile = {
        "drip-body": "4xx",
        "drip-headers": "4xx",
        "drip-status-line": "4xx",
        "stall-before-headers": "4xx",
        "stall-mid-body": "4xx",
        "huge-declared-length": "4xx",
        "endless-chunked": "4xx",
        "endless-unsized": "4xx",
        "redirect-loop": "4xx",
        "redirect-to-loopback": "4xx",
        "redirect-to-metadata": "4xx",
        "redirect-to-6to4-metadata": "4xx",
        "redirect-to-file": "4xx",
        "redirect-to-gopher": "4xx",
        "redirect-without-location": "4xx",
        "redirect-malformed-location": "4xx",
        "redirect-to-port-0": "4xx",
        "close-before-body": "4xx",
        "short-body": "4xx",
        "status-500": "4xx",
        "status-404": "4xx",
        "status-204": "4xx",
        "status-206": "4xx",
        "html-page": "4xx",
        "bad-content-length": "4xx",
        "superscript-content-length": "4xx",
        "not-http": "4xx",
        "redirect-to-good-image": "2xx",
        "good-image-chunked": "2xx",
        "gzip-encoded-bomb": "4xx",
    }
    cases += [
        {"name": f"url-hostile-{name}", "url": "{host}/hostile/" + name, "expect": expect}
        for name, expect in hostile.items()
    ]
    cases.append(
        {
            "name": "url-secrets-in-failing-url",
            "url": "{userinfo_host}/hostile/status-404?X-Amz-Signature=s3cr3t-sig",
            "expect": "4xx",
        }
    )
    cases.append(
        {
            "name": "url-userinfo-and-query",
            "url": "{userinfo_host}/image/jpeg-valid-baseline.jpg?X-Amz-Signature=s3cr3t-sig",
            "expect": "2xx",
        }
    )
    return cases


def lambda_events(images: list[dict]) -> list[dict]:
    def b64(file: str) -> str:
        return base64.b64encode((IMAGES / file).read_bytes()).decode()

    def function_url(
        body: object, content_type: object = "application/json", encoded: object = False, **extra
    ):
        headers = {"content-type": content_type} if content_type is not None else {}
        return {
            "version": "2.0",
            "rawPath": "/",
            "headers": headers,
            "body": body,
            "isBase64Encoded": encoded,
            **extra,
        }

    events = {
        "not-an-object-list": (["http://example.com"], "4xx"),
        "not-an-object-string": ("http://example.com", "4xx"),
        "not-an-object-number": (7, "4xx"),
        "not-an-object-null": (None, "4xx"),
        "not-an-object-bool": (True, "4xx"),
        "empty-object": ({}, "4xx"),
        "direct-unknown-field": ({"link": "http://example.com"}, "4xx"),
        "direct-url-number": ({"url": 1}, "4xx"),
        "direct-url-nested": ({"url": {"url": "x"}}, "4xx"),
        "direct-url-empty": ({"url": "  "}, "4xx"),
        "direct-top-k-bool": (
            {"url": "{host}/image/jpeg-valid-baseline.jpg", "top_k": True},
            "4xx",
        ),
        "direct-top-k-huge": (
            {"url": "{host}/image/jpeg-valid-baseline.jpg", "top_k": 10**30},
            "4xx",
        ),
        "direct-top-k-float": (
            {"url": "{host}/image/jpeg-valid-baseline.jpg", "top_k": 1.5},
            "4xx",
        ),
        "direct-logits-string": (
            {"url": "{host}/image/jpeg-valid-baseline.jpg", "include_logits": "no"},
            "4xx",
        ),
        "direct-lone-surrogate-url": ({"url": "http://example.com/\ud800"}, "4xx"),
        "direct-lone-surrogate-key": ({"\udfff": 1}, "4xx"),
        "direct-url-too-long": ({"url": "http://example.com/" + "a" * 3000}, "4xx"),
        "direct-good-url": ({"url": "{host}/image/jpeg-valid-baseline.jpg", "top_k": 2}, "2xx"),
        "direct-good-url-with-secrets": (
            {"url": "{userinfo_host}/image/jpeg-valid-baseline.jpg?X-Amz-Signature=s3cr3t-sig"},
            "2xx",
        ),
        "direct-failing-url-with-secrets": (
            {"url": "{userinfo_host}/hostile/status-404?X-Amz-Signature=s3cr3t-sig"},
            "4xx",
        ),
        "direct-malformed-png-url": ({"url": "{host}/image/png-bad-filter-5-first-row.png"}, "4xx"),
        "direct-truncated-jpeg-url": (
            {"url": "{host}/image/jpeg-claims-6000x6000-truncated.jpg"},
            "4xx",
        ),
        "direct-slow-url": ({"url": "{host}/hostile/drip-body"}, "4xx"),
        "body-null": (function_url(None), "4xx"),
        "body-number": (function_url(5), "4xx"),
        "body-object": (function_url({"url": "x"}), "4xx"),
        "body-empty": (function_url(""), "4xx"),
        "body-not-json": (function_url("url=http://example.com"), "4xx"),
        "body-nested-1000": (function_url("[" * 1000 + "]" * 1000), "4xx"),
        "body-nested-100000": (function_url("[" * 100000), "4xx"),
        "body-int-5000-digits": (
            function_url('{"url": "http://x/", "top_k": ' + "7" * 5000 + "}"),
            "4xx",
        ),
        "body-lone-surrogate-string": (function_url('{"url": "http://example.com/\ud800"}'), "4xx"),
        "body-lone-surrogate-escaped": (
            function_url('{"url": "http://example.com/\\ud800"}'),
            "4xx",
        ),
        "body-invalid-utf8-base64": (
            function_url(base64.b64encode(b'{"url": "\xff"}').decode(), encoded=True),
            "4xx",
        ),
        "body-base64-invalid": (function_url("!!!not base64!!!", "image/jpeg", True), "4xx"),
        "body-base64-whitespace": (function_url("aGVs bG8=", "image/jpeg", True), "4xx"),
        "body-image-not-base64": (function_url("\xff\xd8\xff", "image/jpeg", False), "4xx"),
        # "pad_body": that many "A" appended to the event's body when the case is loaded.
        "body-over-limit": (function_url("A", "image/jpeg", True, pad_body=9 * 1024 * 1024), "4xx"),
        "headers-not-object": (
            {"body": '{"url": "http://127.0.0.1/"}', "headers": ["content-type"]},
            "4xx",
        ),
        "headers-content-type-list": (
            function_url('{"url": "http://127.0.0.1/"}', ["application/json"]),
            "4xx",
        ),
        "headers-content-type-number": (function_url('{"url": "http://127.0.0.1/"}', 5), "4xx"),
        "headers-content-type-gif": (function_url(b64("other-gif.bin"), "image/gif", True), "4xx"),
        "headers-content-type-upper": (
            function_url(b64("jpeg-valid-baseline.jpg"), "IMAGE/JPEG", True),
            "2xx",
        ),
        "headers-content-type-params": (
            function_url(b64("jpeg-valid-baseline.jpg"), "image/jpeg; q=1", True),
            "2xx",
        ),
        "url-private-through-endpoint": (
            function_url('{"url": "http://169.254.169.254/latest/meta-data/"}'),
            "4xx",
        ),
        "url-6to4-metadata": (function_url('{"url": "http://[2002:a9fe:a9fe::1]/"}'), "4xx"),
        "url-file-scheme": (function_url('{"url": "file:///etc/passwd"}'), "4xx"),
    }
    for index, url in enumerate(MALFORMED_URLS[:30]):
        events[f"url-malformed-{index:02d}"] = ({"url": url}, "4xx")
    for index, host in enumerate(REFUSED_HOSTS[:20]):
        events[f"url-refused-{index:02d}"] = ({"url": f"http://{host}/dog.jpg"}, "4xx")
    for image in images:
        if image["name"].startswith(
            (
                "png-bad",
                "png-too-little",
                "jpeg-baseline-truncated",
                "png-valid-rgb",
                "jpeg-valid-baseline",
                "jpeg-claims",
            )
        ):
            events[f"image-{image['name']}"] = (
                function_url(b64(image["file"]), image["content_type"], True),
                image["expect"],
            )
    return [
        {"name": name, "event": event, "expect": expect} for name, (event, expect) in events.items()
    ]


def write_jsonl(name: str, rows_: list[dict]) -> None:
    with open(HERE / name, "w") as out:
        for row in rows_:
            out.write(json.dumps(row, sort_keys=True) + "\n")


def main() -> None:
    images = write_images()
    write_jsonl("images.jsonl", images)
    write_jsonl("requests.jsonl", http_requests())
    write_jsonl("raw.jsonl", raw_requests())
    write_jsonl("urls.jsonl", url_cases(images))
    write_jsonl("lambda_events.jsonl", lambda_events(images))
    counts = {
        f: len((HERE / f).read_text().splitlines())
        for f in (
            "images.jsonl",
            "requests.jsonl",
            "raw.jsonl",
            "urls.jsonl",
            "lambda_events.jsonl",
        )
    }
    print(counts, "total", sum(counts.values()))


if __name__ == "__main__":
    main()
