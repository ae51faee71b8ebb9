"""What the serving path's safety costs and bounds, measured in one run:

- peak memory of one decode at the pixel budget (4096 x 4096) and the time of one typical
  decode (500 x 375 JPEG), ours (Pillow, with the PNG checks) against torchvision's
  ``decode_image``, the decoder serving used before (it crashes on malformed PNGs);
- the longest a fetch from a misbehaving server takes, against its time budget.

    python -m bench.serving_safety [--budget 2]

Each memory figure comes from a fresh process: the kernel's peak-RSS mark (VmHWM) is reset
through /proc/self/clear_refs just before the decode and read just after it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SIDE = 4096

_MEASURE = """
import sys, torch
from pathlib import Path
data = Path(sys.argv[2]).read_bytes()
if sys.argv[1] == "ours":
    from ml.inference import decode
    run = lambda: decode(data)
else:
    from torchvision.io import ImageReadMode, decode_image
    run = lambda: decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                               mode=ImageReadMode.RGB)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
run()  # warm up: first-call allocations are not per request
before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")
image = run()
print((status("VmHWM:") - before) / 1024)
"""


def images(folder: Path) -> dict[str, Path]:
    picture = Image.linear_gradient("L").resize((SIDE, SIDE))
    rgb = Image.merge("RGB", [picture, picture.rotate(90), picture.rotate(180)])
    files = {
        "PNG RGB": ("png", rgb, {}),
        "PNG RGBA": ("png", rgb.convert("RGBA"), {}),
        "JPEG baseline": ("jpg", rgb, {"quality": 90}),
        "JPEG progressive": ("jpg", rgb, {"quality": 90, "progressive": True}),
    }
    paths = {}
    for name, (extension, image, options) in files.items():
        path = folder / f"{name.replace(' ', '-')}.{extension}"
        image.save(path, "PNG" if extension == "png" else "JPEG", **options)
        paths[name] = path
    return paths


def peak_mib(decoder: str, path: Path) -> float:
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, decoder, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


def decode_ms(repeats: int = 50) -> dict[str, float]:
    import numpy as np
    import torch
    from torchvision.io import ImageReadMode, decode_image

    from ml.inference import decode
    from ops.synth import render

    buffer = io.BytesIO()
    render(0, 5, np.random.default_rng(0), 400).resize((500, 375)).save(buffer, "JPEG")
    data = buffer.getvalue()

    def ours() -> object:
        return decode(data)

    def torchvision() -> object:
        tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return decode_image(tensor, mode=ImageReadMode.RGB)

    timings = {}
    for name, run in (("ours", ours), ("torchvision", torchvision)):
        run()
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            samples.append((time.perf_counter() - started) * 1000)
        timings[name] = statistics.median(samples)
    return timings


def worst_fetch_s(budget: float) -> dict[str, float]:
    from ml.url_fetch import FetchPolicy, UrlFetchError, fetch
    from tests.security.hostile import HOSTILE_HOST, HostileImageServer

    server = HostileImageServer()
    host = server.start()
    policy = FetchPolicy(
        timeout_s=budget, allowed_networks=(ipaddress.ip_network(f"{HOSTILE_HOST}/32"),)
    )
    elapsed = {}
    try:
        for behaviour in (
            "drip-body",
            "drip-headers",
            "drip-status-line",
            "stall-before-headers",
            "stall-mid-body",
        ):
            started = time.monotonic()
            with contextlib.suppress(UrlFetchError):
                fetch(f"{host}/hostile/{behaviour}", policy)
            elapsed[behaviour] = time.monotonic() - started
        real_resolver = socket.getaddrinfo
        socket.getaddrinfo = lambda *args, **kwargs: time.sleep(budget * 3) or []
        started = time.monotonic()
        with contextlib.suppress(UrlFetchError):
            fetch("http://images.example.com/dog.jpg", policy)
        elapsed["hanging DNS"] = time.monotonic() - started
        socket.getaddrinfo = real_resolver
    finally:
        server.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=2.0, help="fetch time budget, s")
    args = parser.parse_args()
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, path in images(Path(folder)).items():
            ours, theirs = peak_mib("ours", path), peak_mib("torchvision", path)
            report[f"peak MiB, {name} {SIDE}x{SIDE} ({path.stat().st_size // 1024} KiB)"] = {
                "ours": round(ours, 1),
                "torchvision": round(theirs, 1),
                "ratio": round(ours / theirs, 2) if theirs else None,
            }
    timings = decode_ms()
    report["decode ms, 500x375 JPEG (median)"] = {
        **{k: round(v, 2) for k, v in timings.items()},
        "ratio": round(timings["ours"] / timings["torchvision"], 2),
    }
    fetches = worst_fetch_s(args.budget)
    worst = max(fetches.values())
    report[f"fetch s against a {args.budget:g} s budget"] = {
        **{k: round(v, 2) for k, v in fetches.items()},
        "worst / budget": round(worst / args.budget, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
