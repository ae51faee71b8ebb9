"""Model artifacts as SageMaker writes them: ``model.tar.gz`` with the model directory's
contents at the archive's root. The one place that packs and unpacks them (the model server,
the local cloud's training jobs and the training host all use it)."""

from __future__ import annotations

import tarfile
from pathlib import Path


class ArtifactError(RuntimeError):
    """The model artifact is missing, unreadable, or lacks code/inference.py."""


def extract_artifact(artifact: Path, into: Path) -> Path:
    """Unpack ``model.tar.gz`` into ``into`` (refusing members that would land outside it)."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(artifact, "r:gz") as archive:
            archive.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ArtifactError(f"cannot unpack {artifact}: {exc}") from exc
    return into


def pack_artifact(model_dir: Path, archive: Path) -> Path:
    """Write ``model.tar.gz`` with ``model_dir``'s contents at its root, as SageMaker does."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive
