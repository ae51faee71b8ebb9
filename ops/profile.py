"""A training profile: the static hyperparameters every job of an `ops train` run gets, and the
search space its tuning explores. ops/target.py says which profile each target uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    arch: str
    weights: str
    image_size: int
    epochs: int
    learning_rates: tuple[float, float]  # the range tuning searches, on a log scale
    batch_sizes: tuple[int, ...]  # the choices tuning searches

    def hyperparameters(self) -> dict[str, str]:
        return {
            "arch": self.arch,
            "weights": self.weights,
            "image-size": str(self.image_size),
            "epochs": str(self.epochs),
        }
