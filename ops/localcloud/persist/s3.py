"""S3 across restarts: every bucket's current objects, as they were.

`snapshot` copies the objects out of moto's S3 backend into ``<root>/objects/``; `restore`
puts them back into it directly, with the ETag and LastModified they had (as an upload through
the API each would be a new object with a new LastModified, and 300 of them took seconds).
Files are named by a hash of bucket, key and version (a key may contain ``../``); an object
whose file exists is not written again, and the manifest, written last, says what each file
is, so a snapshot cut short leaves the previous one whole. Kept: the current object, its
headers (content type, user metadata, ...), checksum and storage class. Not kept: versions,
tags, ACLs, bucket settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import FakeKey, s3_backends
from moto.utilities.utils import get_partition

from ops.jsonfile import write_atomic

log = logging.getLogger("dogops.localcloud")
MANIFEST = "manifest.json"


def _file_name(bucket: str, key: str, version: str) -> str:
    return hashlib.sha256(f"{bucket}\0{key}\0{version}".encode()).hexdigest()


def _read_manifest(root: Path) -> dict:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"buckets": {}}


def snapshot(root: Path) -> int:
    """Write the current objects to ``root``; returns how many files were written."""
    objects_dir = root / "objects"
    objects_dir.mkdir(parents=True, exist_ok=True)
    buckets: dict[str, dict] = {}
    written = 0
    for account, _, backend in s3_backends.iter_backends():
        for name, bucket in list(backend.buckets.items()):
            entries: dict[str, dict] = {}
            for key_name, key in bucket.keys.items():
                if not isinstance(key, FakeKey):
                    continue  # a delete marker: no current object
                last_modified = key.last_modified.isoformat()
                entry = {
                    "file": _file_name(name, key_name, f"{key.etag}\0{last_modified}"),
                    "etag": key.etag,
                    "last_modified": last_modified,  # UTC, as moto keeps it (naive)
                    "headers": dict(key.metadata),
                    "storage_class": key.storage_class,
                    "checksum": [key.checksum_algorithm, key.checksum_value],
                }
                path = objects_dir / entry["file"]
                if not path.is_file():
                    partial = path.with_name(path.name + ".tmp")
                    partial.write_bytes(key.value)
                    partial.replace(path)
                    written += 1
                entries[key_name] = entry
            buckets[name] = {"account": account, "region": bucket.region_name, "objects": entries}
    write_atomic(root / MANIFEST, {"buckets": buckets})
    kept = {entry["file"] for bucket in buckets.values() for entry in bucket["objects"].values()}
    for path in objects_dir.iterdir():
        if path.name not in kept:
            path.unlink()
    return written


def restore(root: Path) -> int:
    """Put back what the last snapshot kept; returns the number of objects."""
    count = 0
    for name, saved in _read_manifest(root)["buckets"].items():
        region = saved.get("region") or "us-east-1"
        backend = s3_backends[saved.get("account", DEFAULT_ACCOUNT_ID)][get_partition(region)]
        if name not in backend.buckets:
            try:
                backend.create_bucket(name, region)
            except Exception as exc:  # e.g. another account's bucket has the name
                log.error("bucket %s: not restored (%s: %s)", name, type(exc).__name__, exc)
                continue
        for key_name, entry in saved["objects"].items():
            path = root / "objects" / entry["file"]
            if not path.is_file():
                log.error("s3://%s/%s: its saved copy is missing; not restored", name, key_name)
                continue
            algorithm, checksum = entry.get("checksum") or (None, None)
            key = backend.put_object(
                name,
                key_name,
                path.read_bytes(),
                storage=entry.get("storage_class"),
                checksum_value=checksum,
                disable_notification=True,
            )
            key.set_metadata(_headers(entry))
            key.checksum_algorithm = algorithm
            key._etag = entry["etag"].strip('"')  # multipart ETags are not the content's MD5
            if entry.get("last_modified"):  # snapshots before LastModified was kept lack it
                key.last_modified = datetime.fromisoformat(entry["last_modified"])
            count += 1
    return count


def _headers(entry: dict) -> dict:
    if "headers" in entry:
        return dict(entry["headers"])
    # A snapshot from before headers were kept: content type and user metadata.
    headers = {f"x-amz-meta-{k}": v for k, v in (entry.get("metadata") or {}).items()}
    if entry.get("content_type"):
        headers["Content-Type"] = entry["content_type"]
    return headers
