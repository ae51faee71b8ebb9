"""What a training job reads, put into S3: the code tarball and the data set.

Data goes under ``data/<folder name>-<digest>``, where the digest (12 hex digits of SHA-256)
covers every file's relative path, size and content (`ops.s3.tree_digest`). Two different
folders with the same name (``~/a/synth`` and ``~/b/synth``, or one folder before and after an
edit) get different prefixes, so neither overwrites or mixes into the other's; the same content
maps to the same prefix, so a rerun uploads nothing and a prefix, once complete, never changes:
a job's data URI names exactly the data it trained on. A digest of the folder's path would keep
the first two apart but not the third (a changed folder would reuse its prefix and keep deleted
files), and two machines with the same path would collide.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

import ml
from ml.layout import DataLayoutError, validate_layout
from ops import s3
from ops.errors import OpsError
from ops.target import Target

ENTRY_POINT = "ml/train.py"
DIGEST_CHARS = 12

Progress = Callable[[str, dict], None]


def source_tarball() -> bytes:
    """``ml/`` as SageMaker's ``sourcedir.tar.gz``: the entry point is ``ml/train.py``."""
    package = Path(ml.__file__).resolve().parent
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(package.rglob("*.py")):
            if "__pycache__" not in path.parts:
                tar.add(path, arcname=f"ml/{path.relative_to(package).as_posix()}")
    return buffer.getvalue()


def stage_source(target: Target, run: str) -> str:
    key = f"code/{run}/sourcedir.tar.gz"
    try:
        target.client("s3").put_object(Bucket=target.bucket, Key=key, Body=source_tarball())
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"could not upload the code to s3://{target.bucket}/{key}: {exc}") from exc
    return f"s3://{target.bucket}/{key}"


def data_prefix(folder: Path) -> str:
    """``data/<folder name>-<digest of its content>`` (see the module's docstring)."""
    root = folder.resolve()
    return f"data/{root.name}-{s3.tree_digest(root)[:DIGEST_CHARS]}"


def stage_data(target: Target, folder: Path, progress: Progress) -> str:
    """Upload a dogImages folder (skipping what is there already); its S3 URI."""
    try:
        layout = validate_layout(folder)
    except DataLayoutError as exc:
        raise OpsError(f"{folder}: {exc}") from exc
    uri = f"s3://{target.bucket}/{data_prefix(folder)}"
    progress("upload", {"uri": uri, "images": sum(layout.counts.values())})
    uploaded, skipped = s3.upload_tree(folder, uri, client=target.client("s3"))
    progress("uploaded", {"uri": uri, "uploaded": uploaded, "skipped": skipped})
    return uri
