"""Datasets, transforms and loaders for the dogImages layout.

The layout is the one the original data set ships in::

    root/train/001.Affenpinscher/Affenpinscher_00001.jpg
    root/valid/...
    root/test/...

Every split holds the same class folders. Images are decoded with torchvision's native
decoders into uint8 tensors and transformed with ``transforms.v2`` on tensors, which is several
times faster than the per-image PIL pipeline of the original project. Files the native decoder
refuses (truncated JPEGs: the real data set has one; formats it does not know) fall back to PIL
with truncation tolerated, because a single damaged training image must not stop a run.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from ml.layout import (  # noqa: F401  (re-exported: ml.data is the public face)
    IMAGE_SUFFIXES,
    SPLITS,
    DataLayoutError,
    Layout,
    _image_files,
    display_name,
    validate_layout,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(image_size: int) -> v2.Transform:
    """Augmentation for training: random resized crop and horizontal flip, then normalise."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def eval_transform(image_size: int) -> v2.Transform:
    """Deterministic resize (shorter side to 8/7 of the crop, as for ImageNet) and centre crop."""
    return v2.Compose(
        [
            v2.Resize(round(image_size * 256 / 224), antialias=True),
            v2.CenterCrop(image_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _decode_with_pil(path: Path) -> torch.Tensor:
    from PIL import Image, ImageFile

    # Only training data goes through here, in the training process: serving never tolerates
    # truncated input (ml/inference.py rejects it), so flipping Pillow's global is contained.
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except OSError as exc:
        raise OSError(f"cannot decode image {path}: {exc}") from exc
    return v2.functional.pil_to_tensor(rgb)


def load_rgb(path: Path) -> torch.Tensor:
    """Decode an image file to a (3, H, W) uint8 tensor; grey, CMYK and alpha become RGB."""
    try:
        data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
        return decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError:
        return _decode_with_pil(path)


class DogImages(Dataset):
    """One split of the dogImages layout; labels index ``classes`` (sorted folder names)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        classes: Sequence[str],
        transform: v2.Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.classes = list(classes)
        self.transform = transform
        self.samples: list[tuple[Path, int]] = [
            (path, label)
            for label, cls in enumerate(self.classes)
            for path in _image_files(self.root / split / cls)
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = load_rgb(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def _worker_context() -> multiprocessing.context.BaseContext:
    """The forkserver start method, its server preloaded with this module (and so torch and
    torchvision): workers then fork from a clean single-threaded process that has the imports
    done, instead of importing torch each."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ml.data"])
    return context


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    workers: int,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
) -> DataLoader:
    """A loader for one process of a (possibly distributed) run.

    Training shards with `DistributedSampler` (shuffled, padded so every rank takes the same
    number of steps). Evaluation shards by striding without padding, so that summing losses and
    counts over ranks gives exact per-sample means.
    """
    sampler = None
    if train and world_size > 1:
        sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed
        )
    elif not train and world_size > 1:
        dataset = Subset(dataset, range(rank, len(dataset), world_size))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        # Distributed: workers start from a clean forkserver, not by forking this process. A
        # fork taken while gloo's threads hold a lock can leave the child stuck for ever (seen:
        # a two-rank run whose rank 0 waited on an eval worker frozen in os.fork). Costs ~2 s
        # once per run (the server imports torch), so single-process runs keep plain fork.
        multiprocessing_context=_worker_context() if workers > 0 and world_size > 1 else None,
        generator=generator,
        drop_last=False,
    )
