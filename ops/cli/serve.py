"""`ops serve`: run the local model server on a trained artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ops import model_server
from ops.errors import OpsError


def serve(
    model: Annotated[
        Path, typer.Argument(help="Model directory or model.tar.gz written by training.")
    ],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (0 picks a free one).")] = 8080,
) -> None:
    """Serve a model like the SageMaker container does: GET /ping, POST /invocations."""
    try:
        model_server.serve(model, host, port)
    except model_server.ArtifactError as exc:
        raise OpsError(str(exc)) from exc
