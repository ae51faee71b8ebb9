"""Model-server latency for one JPEG (p50/p95 over sequential requests), ours vs the original
design's handler, both served by ops.model_server on 127.0.0.1 with the same weights.

    python -m bench.serving [--arch resnet50] [--requests 60]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

from ml.model import ModelConfig, build_model
from ml.train import export_artifact
from ops.synth import sample_jpeg

REPO = Path(__file__).resolve().parents[1]


def latencies(model_dir: Path, jpeg: bytes, requests: int) -> list[float]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ops.model_server", str(model_dir), "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().split()[-1] + "/invocations"
        times = []
        with httpx.Client(timeout=60) as client:
            for index in range(requests + 5):
                started = time.perf_counter()
                response = client.post(url, content=jpeg, headers={"Content-Type": "image/jpeg"})
                response.raise_for_status()
                if index >= 5:  # warm-up requests are not counted
                    times.append((time.perf_counter() - started) * 1000)
        return times
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(0)
    jpeg = sample_jpeg()
    config = ModelConfig(arch=args.arch, num_classes=133)
    names = [f"breed {i}" for i in range(133)]
    with tempfile.TemporaryDirectory() as tmp:
        ours_dir = Path(tmp) / "ours"
        export_artifact(build_model(config), config, names, 224, ours_dir)
        base_dir = Path(tmp) / "baseline"
        shutil.copytree(ours_dir, base_dir)
        shutil.copy2(REPO / "bench" / "baseline_inference.py", base_dir / "code" / "inference.py")
        results = {}
        for name, model_dir in (("baseline", base_dir), ("ours", ours_dir)):
            times = latencies(model_dir, jpeg, args.requests)
            results[name] = {
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(statistics.quantiles(times, n=20)[18], 1),
            }
    results["p50_speedup"] = round(results["baseline"]["p50_ms"] / results["ours"]["p50_ms"], 2)
    print(json.dumps({"arch": args.arch, "jpeg_bytes": len(jpeg), **results}))


if __name__ == "__main__":
    main()
