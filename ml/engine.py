"""One epoch of training and one pass of evaluation.

Losses are summed per sample and divided by the number of samples seen (over all ranks in a
distributed run), and accuracy is a fraction in [0, 1]. The original project divided summed
batch losses by the number of batches with floor division, which made tuning favour small
batches; these are the numbers the tuning objective reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader


@dataclass(frozen=True)
class EpochStats:
    loss: float
    accuracy: float
    samples: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def _reduce(
    loss_sum: float, correct: int, count: int, device: torch.device
) -> tuple[float, int, int]:
    if not (dist.is_available() and dist.is_initialized()):
        return loss_sum, correct, count
    totals = torch.tensor(
        [loss_sum, float(correct), float(count)], dtype=torch.float64, device=device
    )
    dist.all_reduce(totals)
    return totals[0].item(), int(totals[1].item()), int(totals[2].item())


def _stats(loss_sum: float, correct: int, count: int, started: float) -> EpochStats:
    return EpochStats(
        loss=loss_sum / count if count else float("nan"),
        accuracy=correct / count if count else float("nan"),
        samples=count,
        seconds=time.perf_counter() - started,
    )


def _to_device(images: torch.Tensor, labels: torch.Tensor, device: torch.device):
    images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> EpochStats:
    """Train for one pass over ``loader``; returns per-sample mean loss and accuracy."""
    model.train()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    loss_sum, correct, count = 0.0, 0, 0
    started = time.perf_counter()
    for images, labels in loader:
        images, labels = _to_device(images, labels, device)
        logits = model(images)
        batch_loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        (batch_loss / labels.numel()).backward()
        optimizer.step()
        loss_sum += batch_loss.item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        count += labels.numel()
    return _stats(*_reduce(loss_sum, correct, count, device), started)


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> EpochStats:
    """Per-sample mean loss and accuracy over ``loader`` (summed over ranks when distributed)."""
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    loss_sum, correct, count = 0.0, 0, 0
    started = time.perf_counter()
    for images, labels in loader:
        images, labels = _to_device(images, labels, device)
        logits = model(images)
        loss_sum += criterion(logits, labels).item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        count += labels.numel()
    return _stats(*_reduce(loss_sum, correct, count, device), started)
