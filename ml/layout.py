"""The dogImages folder layout, checked without importing torch (the `ops` CLI uses this).

::

    root/train/001.Affenpinscher/Affenpinscher_00001.jpg
    root/valid/...
    root/test/...
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "valid", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DataLayoutError(ValueError):
    """The data folder is not in the dogImages layout."""


def display_name(class_folder: str) -> str:
    """``001.Affenpinscher`` -> ``Affenpinscher``; ``045.Cardigan_welsh_corgi`` keeps underscores
    as spaces: ``Cardigan welsh corgi``."""
    prefix, sep, rest = class_folder.partition(".")
    name = rest if sep and prefix.isdigit() else class_folder
    return name.replace("_", " ")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class Layout:
    """What `validate_layout` found: class folders (sorted) and image counts per split."""

    root: Path
    classes: tuple[str, ...]
    counts: dict[str, int]

    @property
    def class_names(self) -> list[str]:
        return [display_name(c) for c in self.classes]


def validate_layout(root: str | os.PathLike[str], splits: Sequence[str] = SPLITS) -> Layout:
    """Check that ``root`` has every split, the same class folders in each, and images in each
    class of the training split. Raises `DataLayoutError` naming the first problem found."""
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"data folder {root} does not exist")
    classes_by_split: dict[str, tuple[str, ...]] = {}
    counts: dict[str, int] = {}
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataLayoutError(f"{root} has no '{split}/' folder (expected {', '.join(splits)})")
        classes = tuple(sorted(d.name for d in split_dir.iterdir() if d.is_dir()))
        if not classes:
            raise DataLayoutError(f"{split_dir} has no class folders")
        classes_by_split[split] = classes
        counts[split] = sum(len(_image_files(split_dir / c)) for c in classes)
    reference = classes_by_split[splits[0]]
    for split in splits[1:]:
        if classes_by_split[split] != reference:
            missing = sorted(set(reference) - set(classes_by_split[split]))
            extra = sorted(set(classes_by_split[split]) - set(reference))
            raise DataLayoutError(
                f"'{split}/' classes differ from '{splits[0]}/': "
                f"missing {missing[:5]}, unexpected {extra[:5]}"
            )
    empty = [c for c in reference if not _image_files(root / splits[0] / c)]
    if empty:
        raise DataLayoutError(f"training classes without images: {empty[:5]}")
    return Layout(root=root, classes=reference, counts=counts)
