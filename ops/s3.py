"""S3 helpers shared by the commands: URI parsing, a folder tree's content digest, uploading
a folder tree and downloading one object."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ops.errors import OpsError


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``) without trailing slash."""
    if not uri.startswith("s3://"):
        raise OpsError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise OpsError(f"{uri!r} names no bucket")
    return bucket, prefix.strip("/")


def tree_files(root: Path) -> list[Path]:
    """Every file under ``root``, sorted: what `upload_tree` sends and `tree_digest` covers."""
    return sorted(p for p in root.rglob("*") if p.is_file())


def tree_digest(root: Path) -> str:
    """SHA-256 (hex) over every file's relative path, size and content: two folders get the
    same digest only when `upload_tree` would send the same keys with the same bytes."""
    manifest = hashlib.sha256()
    for path in tree_files(root):
        with path.open("rb") as f:
            content = hashlib.file_digest(f, "sha256").hexdigest()
        line = f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0{content}\n"
        manifest.update(line.encode())
    return manifest.hexdigest()


def _existing_sizes(client, bucket: str, prefix: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
        for item in page.get("Contents", []):
            sizes[item["Key"]] = item["Size"]
    return sizes


def upload_tree(
    root: Path,
    uri: str,
    *,
    client=None,
    threads: int = 8,
    on_total: Callable[[int], None] | None = None,
    on_file: Callable[[], None] | None = None,
) -> tuple[int, int]:
    """Upload every file under ``root`` to ``uri`` keeping relative paths. Files already there
    with the same size are skipped, so an interrupted upload can simply be run again.
    Returns (uploaded, skipped)."""
    bucket, prefix = parse_s3_uri(uri)
    client = client or boto3.client("s3")
    files = tree_files(root)
    try:
        existing = _existing_sizes(client, bucket, prefix)
        todo = []
        for path in files:
            key = "/".join(filter(None, [prefix, path.relative_to(root).as_posix()]))
            if existing.get(key) != path.stat().st_size:
                todo.append((path, key))
        if on_total:
            on_total(len(todo))

        def put(item: tuple[Path, str]) -> None:
            client.upload_file(str(item[0]), bucket, item[1])
            if on_file:
                on_file()

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(put, todo))
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"upload to {uri} failed: {exc}") from exc
    return len(todo), len(files) - len(todo)


def download_file(uri: str, destination: Path, *, client=None) -> Path:
    """Download the object at ``uri`` to ``destination`` (its folder must exist)."""
    bucket, key = parse_s3_uri(uri)
    if not key:
        raise OpsError(f"{uri!r} names no object")
    client = client or boto3.client("s3")
    try:
        client.download_file(bucket, key, str(destination))
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"could not download {uri}: {exc}") from exc
    return destination
