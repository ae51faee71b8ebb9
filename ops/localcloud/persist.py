"""Keep the local cloud's S3 across restarts.

moto keeps objects in memory. When the local cloud stops, `snapshot` copies every bucket's
current objects to ``<home>/s3/`` (only what changed since the last snapshot); when it starts,
`restore` puts them back. Files are named by a hash of bucket and key (a key may contain
``../``), with a manifest of what each is. Versions, tags and ACLs are not kept: the current
object, its content type and user metadata are.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ops.jsonfile import write_atomic

log = logging.getLogger("dogops.localcloud")
MANIFEST = "manifest.json"


def _file_name(bucket: str, key: str) -> str:
    return hashlib.sha256(f"{bucket}\0{key}".encode()).hexdigest()


def _read_manifest(root: Path) -> dict:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"buckets": {}}


def snapshot(s3, root: Path) -> int:
    """Write the current objects (``s3``: a client of moto's S3) to ``root``; returns how many
    files were (re)written."""
    objects_dir = root / "objects"
    objects_dir.mkdir(parents=True, exist_ok=True)
    previous = _read_manifest(root)["buckets"]
    buckets: dict[str, dict] = {}
    written = 0
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        region = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
        entries: dict[str, dict] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                key = item["Key"]
                file_name = _file_name(name, key)
                old = previous.get(name, {}).get("objects", {}).get(key)
                if old and old["etag"] == item["ETag"] and (objects_dir / file_name).is_file():
                    entries[key] = old
                    continue
                head = s3.head_object(Bucket=name, Key=key)
                s3.download_file(name, key, str(objects_dir / file_name))
                entries[key] = {
                    "file": file_name,
                    "etag": item["ETag"],
                    "content_type": head.get("ContentType"),
                    "metadata": head.get("Metadata", {}),
                }
                written += 1
        buckets[name] = {"region": region, "objects": entries}
    kept = {entry["file"] for bucket in buckets.values() for entry in bucket["objects"].values()}
    for path in objects_dir.iterdir():
        if path.name not in kept:
            path.unlink()
    write_atomic(root / MANIFEST, {"buckets": buckets})
    return written


def restore(s3, root: Path) -> int:
    """Put back what the last snapshot kept; returns the number of objects."""
    manifest = _read_manifest(root)["buckets"]
    count = 0
    for name, bucket in manifest.items():
        region = bucket.get("region") or "us-east-1"
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
        for key, entry in bucket["objects"].items():
            path = root / "objects" / entry["file"]
            if not path.is_file():
                log.warning("s3://%s/%s: its saved copy is missing; not restored", name, key)
                continue
            extra = {"Metadata": entry.get("metadata") or {}}
            if entry.get("content_type"):
                extra["ContentType"] = entry["content_type"]
            s3.upload_file(str(path), name, key, ExtraArgs=extra)
            count += 1
    return count
