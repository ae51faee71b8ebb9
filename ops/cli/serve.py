"""`ops serve`: run the local model server on a trained artifact."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from ops import s3
from ops.artifacts import ArtifactError
from ops.errors import OpsError
from ops.target import resolve


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
        path = Path(model)
        if model.startswith("s3://"):
            client = resolve(target, outputs).client("s3")
            path = s3.download_file(model, Path(tmp) / "model.tar.gz", client=client)
        from ops import model_server  # uvicorn and torch: only when serving

        try:
            model_server.serve(path, host, port)
        except ArtifactError as exc:
            raise OpsError(str(exc)) from exc
