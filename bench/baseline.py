"""The original project's design, reproduced as the baseline our numbers are measured against.

Per-image PIL decoding and PIL transforms (torchvision.transforms v1, ``ToTensor``), a
DataLoader without workers, a contiguous (NCHW) ResNet whose frozen backbone is still put in
train mode (batch-norm statistics drift), and single-image inference through PIL.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from ml.data import IMAGENET_MEAN, IMAGENET_STD
from ml.model import ModelConfig, build_model


def train_transform(image_size: int) -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def eval_transform(image_size: int) -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.Resize(round(image_size * 256 / 224)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class PilImages(Dataset):
    def __init__(self, samples: list[tuple[Path, int]], transform: transforms.Compose):
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self.transform(Image.open(path).convert("RGB")), label


def loader(samples: list[tuple[Path, int]], image_size: int, batch_size: int) -> DataLoader:
    return DataLoader(
        PilImages(samples, train_transform(image_size)), batch_size=batch_size, shuffle=True
    )


def train_epoch(network: nn.Module, data: DataLoader, optimizer: torch.optim.Optimizer) -> int:
    """The original loop: NCHW batches straight from the loader, mean loss per batch."""
    network.train()
    criterion = nn.CrossEntropyLoss()
    seen = 0
    for images, labels in data:
        optimizer.zero_grad()
        loss = criterion(network(images), labels)
        loss.backward()
        optimizer.step()
        seen += len(labels)
    return seen


def model(config: ModelConfig) -> nn.Module:
    """Same network and head as ours, in the default memory format, trained in plain train mode."""
    network = build_model(config).to(memory_format=torch.contiguous_format)
    network.fine_tune = True  # so train() no longer keeps the backbone in eval mode
    network.backbone.requires_grad_(False)
    return network
