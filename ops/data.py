"""Getting the data set: synthesise it, download or take the real one, validate, upload."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx

from ml.layout import DataLayoutError, Layout, validate_layout
from ops import synth
from ops.errors import OpsError

DOG_IMAGES_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"


def validate(root: Path) -> Layout:
    """The dogImages layout of ``root``, or an `OpsError` naming what is wrong."""
    try:
        return validate_layout(root)
    except DataLayoutError as exc:
        raise OpsError(str(exc)) from exc


def synthesize(out: Path, classes: int, per_class: int, size: int, seed: int) -> Layout:
    try:
        return synth.synthesize(out, classes=classes, per_class=per_class, size=size, seed=seed)
    except ValueError as exc:
        raise OpsError(str(exc)) from exc


def download(
    url: str,
    target: Path,
    on_progress: Callable[[int, int | None], None] | None = None,
    timeout_s: float = 30.0,
) -> Path:
    """Stream ``url`` to ``target`` (via a ``.part`` file, so a failed download leaves nothing
    that looks complete). ``on_progress(bytes_so_far, total_or_None)`` is called per chunk."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout_s) as response:
            if response.status_code != 200:
                raise OpsError(f"downloading {url} failed: HTTP {response.status_code}")
            total = (
                int(response.headers["content-length"])
                if "content-length" in response.headers
                else None
            )
            done = 0
            with partial.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
                    done += len(chunk)
                    if on_progress:
                        on_progress(done, total)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise OpsError(f"downloading {url} failed: {exc}") from exc
    partial.replace(target)
    return target


def _find_root(folder: Path) -> Path:
    """The folder holding train/valid/test: ``folder`` itself or one level down (the archive
    unpacks to ``dogImages/``)."""
    if (folder / "train").is_dir():
        return folder
    candidates = [d for d in folder.iterdir() if d.is_dir() and (d / "train").is_dir()]
    if len(candidates) == 1:
        return candidates[0]
    raise OpsError(f"no train/valid/test folders found in {folder}")


def extract(archive: Path, dest: Path) -> Path:
    """Unpack a zip archive into ``dest`` (refusing paths that escape it); returns the data root."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            resolved = dest.resolve()
            for member in zf.namelist():
                if not (dest / member).resolve().is_relative_to(resolved):
                    raise OpsError(f"{archive}: member {member!r} would be written outside {dest}")
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise OpsError(f"{archive} is not a zip archive: {exc}") from exc
    return _find_root(dest)


def fetch(
    source: str,
    dest: Path,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Layout:
    """Bring the data set to ``dest`` from a URL, a local zip archive or a local folder
    (a folder is validated and copied), and validate it. A downloaded archive is kept next to
    ``dest`` as ``<dest>.zip`` and not downloaded again while it is there."""
    local = Path(source)
    if source.startswith(("http://", "https://")):
        archive = dest.parent / f"{dest.name}.zip"
        if not archive.is_file():
            download(source, archive, on_progress)
        root = extract(archive, dest)
    elif local.is_file():
        root = extract(local, dest)
    elif local.is_dir():
        root = _find_root(local)
        validate(root)
        if root.resolve() != dest.resolve():
            shutil.copytree(root, dest, dirs_exist_ok=True)
            root = dest
    else:
        raise OpsError(f"{source} is neither an http(s) URL nor an existing file or folder")
    return validate(root)
