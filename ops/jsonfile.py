"""JSON files that readers see whole: the old content or the new, never half of either."""

from __future__ import annotations

import json
from pathlib import Path


def write_atomic(path: Path, document: object, indent: int | None = None) -> Path:
    """Write ``document`` to ``path`` through a sibling temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=indent))
    tmp.replace(path)
    return path
