"""Files between (local) S3 and a work folder: every object under a prefix, a folder synced up,
and tarballs (source code in; model and output out), as SageMaker moves them.

Failures are `OpsError`s the caller reports on its record (a job's FailureReason)."""

from __future__ import annotations

from pathlib import Path

from ops.errors import OpsError
from ops.model_server import ArtifactError, extract_artifact, pack_artifact
from ops.s3 import parse_s3_uri


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
