"""S3 helpers: URI parsing, a folder tree's content digest, uploading a folder tree,
downloading one object, and moving folders and tarballs between S3 and a work folder as
SageMaker does (used by the local cloud's training jobs and by the training host's steps).

Failures are `OpsError`s."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ops.artifacts import ArtifactError, extract_artifact, pack_artifact
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


def download_prefix(s3, uri: str, target: Path) -> int:
    """Copy every object under ``uri`` into ``target`` (an exact key: that one file); returns
    how many. ``s3://b/data`` means the folder ``data/``: it never matches ``data2/...``."""
    bucket, prefix = parse_s3_uri(uri)
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key == prefix:
                    relative = Path(key).name
                elif prefix and not key[len(prefix) :].startswith("/"):
                    continue
                else:
                    relative = key[len(prefix) :].lstrip("/") if prefix else key
                if not relative or relative.endswith("/"):
                    continue
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, key, str(destination))
                count += 1
    except s3.exceptions.NoSuchBucket as exc:
        raise OpsError(f"bucket {bucket} does not exist") from exc
    return count


def upload_folder(s3, folder: Path, uri: str, uploaded: dict[Path, float] | None = None) -> None:
    """Upload ``folder``'s files under ``uri`` (``*.tmp`` files are half-written and skipped);
    with ``uploaded`` (path -> mtime, updated here) only what changed since the last call."""
    if not folder.is_dir():
        return
    bucket, prefix = parse_s3_uri(uri)
    for path in folder.rglob("*"):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        mtime = path.stat().st_mtime
        if uploaded is not None:
            if uploaded.get(path) == mtime:
                continue
            uploaded[path] = mtime
        key = "/".join(filter(None, [prefix, path.relative_to(folder).as_posix()]))
        s3.upload_file(str(path), bucket, key)


def fetch_tarball(s3, uri: str, into: Path) -> Path:
    """Download the ``.tar.gz`` at ``uri`` beside ``into`` and unpack it there."""
    bucket, key = parse_s3_uri(uri)
    into.mkdir(parents=True, exist_ok=True)
    archive = into.parent / Path(key).name
    try:
        s3.download_file(bucket, key, str(archive))
    except Exception as exc:
        raise OpsError(f"cannot fetch {uri}: {exc}") from exc
    try:
        return extract_artifact(archive, into)
    except ArtifactError as exc:
        raise OpsError(str(exc)) from exc


def put_tarball(s3, folder: Path, uri: str) -> None:
    """Pack ``folder``'s contents (at the archive's root) beside it and upload to ``uri``."""
    bucket, key = parse_s3_uri(uri)
    folder.mkdir(parents=True, exist_ok=True)
    archive = pack_artifact(folder, folder.parent / (folder.name + ".tar.gz"))
    s3.upload_file(str(archive), bucket, key)
