"""The network: a torchvision ResNet backbone and a small classification head.

The backbone is frozen by default (transfer learning as in the original project): its
parameters take no gradients and it stays in eval mode, so batch-norm statistics keep their
pretrained values while the head trains. ``fine_tune=True`` trains everything.

The pooled features are layer-normalised before the head. A frozen backbone's features carry an
offset and scale of their own (with random weights, eval-mode batch norm normalises nothing:
the synthetic set's 512 features average 0.7, norm 21), and the head's Adam steps act on them
unscaled: a learning rate that trains a normalised head kills the ReLUs of an unnormalised one.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models

ARCHITECTURES = {
    "resnet18": (models.resnet18, models.ResNet18_Weights.DEFAULT),
    "resnet34": (models.resnet34, models.ResNet34_Weights.DEFAULT),
    "resnet50": (models.resnet50, models.ResNet50_Weights.DEFAULT),
}
WEIGHTS_CHOICES = ("imagenet", "none")
DOWNLOAD_TIMEOUT_S = 60


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be downloaded and are not in the torch hub cache."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network for serving (saved next to model.pth)."""

    arch: str
    num_classes: int
    hidden: int = 256
    dropout: float = 0.2
    # Recorded in model_config.json; artifacts trained before it have no such key and no
    # norm layer, so a loader must read a missing key as False.
    feature_norm: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@contextmanager
def _socket_timeout(seconds: float):
    # torch.hub's download uses urlopen without a timeout; a blackholed network would hang.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _pretrained_backbone(arch: str) -> nn.Module:
    constructor, weights = ARCHITECTURES[arch]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return constructor(weights=weights)
    except OSError as exc:  # URLError, timeouts, DNS failures
        raise WeightsUnavailableError(
            f"could not fetch ImageNet weights for {arch} from {weights.url} ({exc}). "
            f"Put the file at {cached}, or train from scratch with --weights none."
        ) from exc


class BreedClassifier(nn.Module):
    """ResNet features -> LayerNorm -> [Linear -> ReLU -> Dropout] -> Linear(num_classes)."""

    def __init__(self, config: ModelConfig, weights: str = "none", fine_tune: bool = False):
        super().__init__()
        if config.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {config.arch!r}; choose from {sorted(ARCHITECTURES)}")
        if weights not in WEIGHTS_CHOICES:
            raise ValueError(f"unknown weights {weights!r}; choose from {WEIGHTS_CHOICES}")
        self.config = config
        self.fine_tune = fine_tune
        if weights == "imagenet":
            backbone = _pretrained_backbone(config.arch)
        else:
            backbone = ARCHITECTURES[config.arch][0](weights=None)
        in_features = backbone.fc.in_features
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.norm = nn.LayerNorm(in_features) if config.feature_norm else nn.Identity()
        if config.hidden > 0:
            self.head = nn.Sequential(
                nn.Linear(in_features, config.hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden, config.num_classes),
            )
        else:
            self.head = nn.Sequential(
                nn.Dropout(config.dropout), nn.Linear(in_features, config.num_classes)
            )
        if not fine_tune:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> BreedClassifier:
        super().train(mode)
        if not self.fine_tune:
            self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.fine_tune:
            features = self.backbone(images)
        else:
            with torch.no_grad():
                features = self.backbone(images)
        return self.head(self.norm(features))


def build_model(
    config: ModelConfig, weights: str = "none", fine_tune: bool = False
) -> BreedClassifier:
    """The network in channels_last memory format (faster convolutions on CPU and GPU)."""
    return BreedClassifier(config, weights=weights, fine_tune=fine_tune).to(
        memory_format=torch.channels_last
    )
