"""`ops serve`: run the local model server on a trained artifact."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import BotoCoreError, ClientError

from ops import model_server
from ops.errors import OpsError
from ops.s3 import parse_s3_uri
from ops.target import resolve


def _fetch(uri: str, target: str, outputs: Path | None, folder: Path) -> Path:
    bucket, key = parse_s3_uri(uri)
    destination = folder / "model.tar.gz"
    try:
        resolve(target, outputs).client("s3").download_file(bucket, key, str(destination))
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"could not download {uri} from the {target} target: {exc}") from exc
    return destination


def serve(
    model: Annotated[
        str,
        typer.Argument(
            help="Model directory or model.tar.gz written by training, or its s3:// URI "
            "(as `ops train` prints it)."
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (0 picks a free one).")] = 8080,
    target: Annotated[
        str, typer.Option(help="Where an s3:// MODEL lives: local (the local cloud) or aws.")
    ] = "local",
    outputs: Annotated[
        Path | None, typer.Option(help="aws: saved `terraform output -json`.")
    ] = None,
) -> None:
    """Serve a model like the SageMaker container does: GET /ping, POST /invocations."""
    with tempfile.TemporaryDirectory(prefix="dogops-serve-") as tmp:  # the download, if any
        path = (
            _fetch(model, target, outputs, Path(tmp)) if model.startswith("s3://") else Path(model)
        )
        try:
            model_server.serve(path, host, port)
        except model_server.ArtifactError as exc:
            raise OpsError(str(exc)) from exc
