"""How long the local cloud takes to save S3 at a stop and to start again with it: ours (moto's
S3 backend read and written directly) against the original design (each object downloaded at
the stop and uploaded at the start through the S3 API), 300 objects of 32 KiB by default.

    python -m bench.localcloud_restart [--objects 300] [--size 32768]

In-process; moto's state is reset between the phases (this process runs nothing else).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from moto.core.base_backend import BackendDict

from ops.localcloud import persist
from ops.localcloud.app import LocalCloud

BUCKET = "bench-restart"


def baseline_snapshot(s3, root: Path) -> None:
    """The original design's save: list, head and download every object through the API."""
    (root / "objects").mkdir(parents=True, exist_ok=True)
    buckets = {}
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        entries = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                key = item["Key"]
                file_name = hashlib.sha256(f"{name}\0{key}".encode()).hexdigest()
                head = s3.head_object(Bucket=name, Key=key)
                s3.download_file(name, key, str(root / "objects" / file_name))
                entries[key] = {
                    "file": file_name,
                    "etag": item["ETag"],
                    "content_type": head.get("ContentType"),
                    "metadata": head.get("Metadata", {}),
                }
        buckets[name] = {"region": "us-east-1", "objects": entries}
    (root / "manifest.json").write_text(json.dumps({"buckets": buckets}))


def baseline_restore(s3, root: Path) -> int:
    """The original design's start: create each bucket and upload each object."""
    manifest = json.loads((root / "manifest.json").read_text())["buckets"]
    count = 0
    for name, bucket in manifest.items():
        s3.create_bucket(Bucket=name)
        for key, entry in bucket["objects"].items():
            extra = {"Metadata": entry["metadata"], "ContentType": entry["content_type"]}
            s3.upload_file(str(root / "objects" / entry["file"]), name, key, ExtraArgs=extra)
            count += 1
    return count


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--size", type=int, default=32 * 1024)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    ours_home, baseline_home = work / "ours", work / "baseline"

    cloud = LocalCloud(work / "source", persist=False).start()
    s3 = cloud.moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    body = os.urandom(args.size)
    for i in range(args.objects):
        s3.put_object(Bucket=BUCKET, Key=f"data/{i:04d}.jpg", Body=body + i.to_bytes(4, "big"))
    saved_ours = timed(lambda: persist.s3.snapshot(ours_home / "s3"))
    saved_baseline = timed(lambda: baseline_snapshot(s3, baseline_home / "s3"))
    cloud.stop()

    def start_ours() -> LocalCloud:
        return LocalCloud(ours_home).start()

    def start_baseline() -> LocalCloud:
        started = LocalCloud(baseline_home, persist=False).start()
        baseline_restore(started.moto.client("s3"), baseline_home / "s3")
        return started

    started: dict[str, float] = {}
    for name, start in (("baseline", start_baseline), ("ours", start_ours)):
        BackendDict.reset()
        begin = time.perf_counter()
        restarted = start()
        started[name] = time.perf_counter() - begin
        count = restarted.moto.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"]
        assert count == args.objects, f"{name}: {count} objects came back"
        restarted.persist = False  # nothing to save: keep the timing of the next phase clean
        restarted.stop()

    print(f"{args.objects} objects of {args.size} bytes")
    print(f"{'phase':<22}{'baseline':>10}{'ours':>10}{'ratio':>9}")
    for phase, baseline, ours in (
        ("save at stop", saved_baseline, saved_ours),
        ("start with them", started["baseline"], started["ours"]),
    ):
        print(f"{phase:<22}{baseline:>9.2f}s{ours:>9.2f}s{baseline / ours:>8.1f}x")


if __name__ == "__main__":
    main()
