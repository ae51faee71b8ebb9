"""Training throughput (images/s over one epoch, 224 px), ours vs the original design.

    python -m bench.training [--archs resnet18 resnet50] [--images-per-class 32]

Both variants train the same network on the same synthetic images in one process, one after
the other (a warm-up epoch, then the best of ``--epochs``); compare the ratio across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from bench import baseline
from ml.data import DogImages, make_loader, train_transform
from ml.engine import train_one_epoch
from ml.model import ModelConfig, build_model
from ops.synth import synthesize


def best_images_per_second(run_epoch, epochs: int) -> float:
    """Images/s of the fastest of ``epochs`` epochs, after one untimed warm-up epoch."""
    run_epoch()
    best = 0.0
    for _ in range(epochs):
        started = time.perf_counter()
        seen = run_epoch()
        best = max(best, seen / (time.perf_counter() - started))
    return best


def trainable(network: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in network.parameters() if p.requires_grad]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--images-per-class", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (best is reported)")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        # Source images around 400x300, like the real data set's typical photo.
        layout = synthesize(Path(tmp), classes=5, per_class=args.images_per_class, size=340)
        ours_set = DogImages(layout.root, "train", layout.classes, train_transform(args.image_size))
        workers = min(4, os.cpu_count() or 1)
        cpu = torch.device("cpu")
        results = []
        for arch in args.archs:
            config = ModelConfig(arch=arch, num_classes=len(layout.classes))
            base_model = baseline.model(config)
            base_epoch = partial(
                baseline.train_epoch,
                base_model,
                baseline.loader(ours_set.samples, args.image_size, args.batch_size),
                torch.optim.AdamW(trainable(base_model), lr=1e-3),
            )
            ours_model = build_model(config)
            ours_epoch = partial(
                train_one_epoch,
                ours_model,
                make_loader(ours_set, args.batch_size, train=True, workers=workers),
                torch.optim.AdamW(trainable(ours_model), lr=1e-3),
                cpu,
            )
            base = best_images_per_second(base_epoch, args.epochs)
            ours = best_images_per_second(lambda: ours_epoch().samples, args.epochs)  # noqa: B023
            results.append(
                {
                    "arch": arch,
                    "baseline_img_s": round(base, 1),
                    "ours_img_s": round(ours, 1),
                    "speedup": round(ours / base, 2),
                }
            )
            print(json.dumps(results[-1]), flush=True)
    print(f"threads={torch.get_num_threads()} workers={workers} images={len(ours_set)}")


if __name__ == "__main__":
    main()
