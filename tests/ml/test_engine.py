"""Loss and accuracy are per-sample means over the whole set, whatever the batch size."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ml.engine import evaluate


class FixedLogits(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)[:, :3]


def test_evaluate_is_a_per_sample_mean_for_uneven_batches() -> None:
    torch.manual_seed(0)
    inputs = torch.randn(7, 3, 1, 1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    expected_loss = nn.functional.cross_entropy(inputs.flatten(1), labels).item()
    expected_accuracy = (inputs.flatten(1).argmax(1) == labels).float().mean().item()
    for batch_size in (1, 2, 3, 7):
        loader = DataLoader(TensorDataset(inputs, labels), batch_size=batch_size)
        stats = evaluate(FixedLogits(), loader, torch.device("cpu"))
        assert stats.samples == 7
        assert abs(stats.loss - expected_loss) < 1e-5
        assert abs(stats.accuracy - expected_accuracy) < 1e-6
        assert 0.0 <= stats.accuracy <= 1.0
