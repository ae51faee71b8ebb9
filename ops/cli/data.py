"""`ops data`: synthesise, fetch, validate and upload the data set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TransferSpeedColumn,
)

from ml.layout import Layout
from ops import data, s3

app = typer.Typer(
    help="Get the dog images into the dogImages layout, locally or in S3.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary.")]


def _report(layout: Layout, as_json: bool) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                {"root": str(layout.root), "classes": len(layout.classes), "images": layout.counts}
            )
        )
    else:
        counts = ", ".join(f"{k} {v}" for k, v in layout.counts.items())
        typer.echo(f"{layout.root}: {len(layout.classes)} classes; images: {counts}")


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write train/valid/test into.")],
    classes: Annotated[int, typer.Option(help="Number of classes.", min=2)] = 5,
    per_class: Annotated[
        int, typer.Option(help="Training images per class (valid/test get a quarter).", min=1)
    ] = 24,
    size: Annotated[int, typer.Option(help="Approximate image side in pixels.", min=16)] = 128,
    seed: Annotated[int, typer.Option(help="Same seed, same files.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Write a small synthetic data set in the dogImages layout (visibly different classes)."""
    _report(data.synthesize(out, classes, per_class, size, seed), as_json)


@app.command()
def fetch(
    dest: Annotated[Path, typer.Argument(help="Folder to hold train/valid/test.")],
    source: Annotated[
        str, typer.Option(help="http(s) URL of the zip archive, a local zip, or a local folder.")
    ] = data.DOG_IMAGES_URL,
    as_json: JsonOption = False,
) -> None:
    """Download the dogImages archive (kept as DEST.zip) or take a local archive or folder,
    unpack it into DEST and validate the layout."""
    with Progress(
        *Progress.get_default_columns(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task("downloading", total=None)

        def on_progress(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        layout = data.fetch(source, dest, on_progress)
    _report(layout, as_json)


@app.command()
def validate(
    root: Annotated[Path, typer.Argument(help="Folder holding train/valid/test.")],
    as_json: JsonOption = False,
) -> None:
    """Check the dogImages layout: three splits with the same class folders."""
    _report(data.validate(root), as_json)


@app.command()
def upload(
    root: Annotated[Path, typer.Argument(help="Folder holding train/valid/test.")],
    uri: Annotated[str, typer.Argument(help="Destination, e.g. s3://my-bucket/data")],
    as_json: JsonOption = False,
) -> None:
    """Validate the layout and upload it to S3 (files there with the same size are skipped)."""
    layout = data.validate(root)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task("uploading", total=None)
        uploaded, skipped = s3.upload_tree(
            layout.root,
            uri,
            on_total=lambda n: progress.update(task, total=n),
            on_file=lambda: progress.advance(task),
        )
    if as_json:
        typer.echo(json.dumps({"uri": uri, "uploaded": uploaded, "skipped": skipped}))
    else:
        typer.echo(f"{uri}: uploaded {uploaded} files, {skipped} already there")
