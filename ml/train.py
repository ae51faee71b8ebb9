"""Train the breed classifier: SageMaker script-mode entry point, and a plain CLI.

    python -m ml.train --data data/synth --epochs 3 --arch resnet18 --weights none
    torchrun --nproc_per_node 2 -m ml.train ...          # data parallel

Paths default to the SageMaker environment (``SM_CHANNEL_TRAINING``, ``SM_MODEL_DIR``,
``SM_OUTPUT_DATA_DIR``, ``SM_CHECKPOINT_DIR``) and fall back to local folders, so the same script
runs in a training job, on an EC2 host and on a laptop. Flags override the environment.
Distributed runs take ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from torchrun; only rank 0 prints
metrics and writes files.

Each epoch prints fixed lines that tuning jobs parse with regexes::

    Train Loss: 1.2345
    Validation Loss: 1.1000
    Validation Accuracy: 0.5312

and, with ``--test`` (on by default), after training::

    Test Loss: 1.0500
    Test Accuracy: 0.5500
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

if not __package__:
    # Run as a script (`python ml/train.py`, how SageMaker's training toolkit starts an entry
    # point): make the `ml` package importable from the folder above this file.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.data import (
    DataLayoutError,
    DogImages,
    eval_transform,
    make_loader,
    train_transform,
    validate_layout,
)
from ml.engine import evaluate, train_one_epoch
from ml.model import (
    ARCHITECTURES,
    WEIGHTS_CHOICES,
    ModelConfig,
    WeightsUnavailableError,
    build_model,
)

CHECKPOINT_NAME = "checkpoint.pth"
MODEL_NAME = "model.pth"
CONFIG_NAME = "model_config.json"
# Files copied into the artifact's code/ folder so the SageMaker PyTorch serving container (and
# the local model server) can load it with nothing else installed.
SERVING_MODULES = (
    "__init__.py",
    "data.py",
    "layout.py",
    "model.py",
    "inference.py",
    "url_fetch.py",
)


def _default_dir(env_var: str, sagemaker_path: str, local: str) -> str:
    if env_var in os.environ:
        return os.environ[env_var]
    return sagemaker_path if Path(sagemaker_path).is_dir() else local


def _bool(value: str) -> bool:
    # SageMaker passes every hyperparameter as a string ("True", "false", "1").
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {value!r}")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hp = p.add_argument_group("hyperparameters")
    hp.add_argument(
        "--learning-rate", "--learning_rate", "--lr", dest="learning_rate", type=float, default=0.01
    )
    hp.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=64)
    hp.add_argument("--epochs", type=int, default=5)
    hp.add_argument("--arch", choices=sorted(ARCHITECTURES), default="resnet50")
    hp.add_argument(
        "--weights",
        choices=WEIGHTS_CHOICES,
        default="imagenet",
        help="initial backbone weights (default: imagenet, downloaded via torchvision)",
    )
    hp.add_argument(
        "--fine-tune",
        "--fine_tune",
        dest="fine_tune",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="train the backbone too (default: frozen backbone)",
    )
    hp.add_argument("--image-size", "--image_size", dest="image_size", type=int, default=224)
    hp.add_argument("--hidden", type=int, default=256, help="head hidden units (0: linear head)")
    hp.add_argument("--dropout", type=float, default=0.2)
    hp.add_argument(
        "--weight-decay", "--weight_decay", dest="weight_decay", type=float, default=1e-4
    )
    hp.add_argument("--seed", type=int, default=0)

    io = p.add_argument_group("paths (default: SageMaker environment, else local folders)")
    io.add_argument("--data", default=os.environ.get("SM_CHANNEL_TRAINING", "data"))
    io.add_argument(
        "--model-dir",
        "--model_dir",
        dest="model_dir",
        default=os.environ.get("SM_MODEL_DIR", "model"),
    )
    io.add_argument(
        "--output-data-dir",
        "--output_data_dir",
        dest="output_data_dir",
        default=os.environ.get("SM_OUTPUT_DATA_DIR", "output"),
    )
    io.add_argument(
        "--checkpoint-dir",
        "--checkpoint_dir",
        dest="checkpoint_dir",
        default=_default_dir("SM_CHECKPOINT_DIR", "/opt/ml/checkpoints", "checkpoints"),
    )

    run = p.add_argument_group("run")
    run.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="PATH",
        help="continue from a checkpoint (no value: the checkpoint dir's latest)",
    )
    run.add_argument(
        "--test",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        help="evaluate on the test split after training (default: true)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader worker processes (default: cores per process, at most 4)",
    )
    run.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if available)")
    return p


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_type: str) -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    info = Distributed(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
    )
    if world_size > 1:
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def _instance_cpus() -> int:
    """The instance's cores: SageMaker's SM_NUM_CPUS (the local cloud sets a share of this
    machine's cores when jobs run side by side), else what the OS reports."""
    try:
        return max(1, int(os.environ["SM_NUM_CPUS"]))
    except (KeyError, ValueError):
        return os.cpu_count() or 1


def _log(info: Distributed, message: str) -> None:
    if info.is_main:
        print(message, flush=True)


def _save_atomic(obj: object, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _resume_path(args: argparse.Namespace) -> Path | None:
    if args.resume is None:
        return None
    if args.resume == "auto":
        path = Path(args.checkpoint_dir) / CHECKPOINT_NAME
        return path if path.is_file() else None
    path = Path(args.resume)
    if not path.is_file():
        raise SystemExit(f"error: --resume {path}: no such checkpoint")
    return path


def export_artifact(
    model: torch.nn.Module,
    config: ModelConfig,
    class_names: list[str],
    image_size: int,
    model_dir: Path,
) -> None:
    """Write what serving needs to ``model_dir``: weights, config, and the handler code."""
    model_dir.mkdir(parents=True, exist_ok=True)
    _save_atomic(model.state_dict(), model_dir / MODEL_NAME)
    meta = {**config.to_dict(), "class_names": class_names, "image_size": image_size}
    (model_dir / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
    code_dir = model_dir / "code"
    package_dir = code_dir / "ml"
    package_dir.mkdir(parents=True, exist_ok=True)
    source = Path(__file__).resolve().parent
    for name in SERVING_MODULES:
        shutil.copy2(source / name, package_dir / name)
    # The serving container imports code/inference.py as the user module.
    shutil.copy2(source / "inference.py", code_dir / "inference.py")


def main(args: argparse.Namespace) -> dict[str, float]:
    """Train, checkpoint every epoch, export the model; returns the final metrics."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    info = _setup_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    cpus = _instance_cpus()
    if device.type != "cuda":
        torch.set_num_threads(max(1, cpus // info.local_world_size))
    workers = args.workers
    if workers is None:
        workers = min(4, max(0, cpus // info.local_world_size))
    random.seed(args.seed + info.rank)
    torch.manual_seed(args.seed)

    try:
        layout = validate_layout(args.data)
    except DataLayoutError as exc:
        raise SystemExit(f"error: {exc}") from exc
    class_names = layout.class_names
    _log(info, f"data: {layout.root} classes={len(class_names)} images={layout.counts}")
    threads = torch.get_num_threads()
    _log(info, f"device: {device} world_size={info.world_size} workers={workers} threads={threads}")

    config = ModelConfig(
        arch=args.arch, num_classes=len(class_names), hidden=args.hidden, dropout=args.dropout
    )
    try:
        model = build_model(config, weights=args.weights, fine_tune=args.fine_tune).to(device)
    except WeightsUnavailableError as exc:
        raise SystemExit(f"error: {exc}") from exc
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)

    start_epoch = 1
    checkpoint_path = _resume_path(args)
    if checkpoint_path is not None:
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if checkpoint["config"] != config.to_dict():
            raise SystemExit(
                f"error: checkpoint {checkpoint_path} is for {checkpoint['config']}, "
                f"not {config.to_dict()}"
            )
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_epoch = checkpoint["epoch"] + 1
        _log(info, f"resumed from {checkpoint_path} after epoch {checkpoint['epoch']}")

    train_set = DogImages(args.data, "train", layout.classes, train_transform(args.image_size))
    valid_set = DogImages(args.data, "valid", layout.classes, eval_transform(args.image_size))
    loader_args = {
        "workers": workers,
        "rank": info.rank,
        "world_size": info.world_size,
        "seed": args.seed,
    }
    train_loader = make_loader(train_set, args.batch_size, train=True, **loader_args)
    valid_loader = make_loader(valid_set, args.batch_size, train=False, **loader_args)

    trained = model
    if info.world_size > 1:
        trained = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    checkpoint_dir = Path(args.checkpoint_dir)
    if info.is_main:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, args.epochs + 1):
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        train_stats = train_one_epoch(trained, train_loader, optimizer, device)
        valid_stats = evaluate(model, valid_loader, device)
        _log(
            info,
            f"epoch {epoch}/{args.epochs}: {train_stats.samples} images in "
            f"{train_stats.seconds:.1f} s ({train_stats.images_per_second:.1f} img/s)",
        )
        _log(info, f"Train Loss: {train_stats.loss:.6f}")
        _log(info, f"Validation Loss: {valid_stats.loss:.6f}")
        _log(info, f"Validation Accuracy: {valid_stats.accuracy:.6f}")
        metrics.update(
            train_loss=train_stats.loss,
            validation_loss=valid_stats.loss,
            validation_accuracy=valid_stats.accuracy,
            epoch=epoch,
            train_images_per_second=train_stats.images_per_second,
        )
        if info.is_main:
            _save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                    "config": config.to_dict(),
                    "args": vars(args),
                },
                checkpoint_dir / CHECKPOINT_NAME,
            )
            _log(info, f"checkpoint: epoch {epoch} saved to {checkpoint_dir / CHECKPOINT_NAME}")

    if args.test:
        test_set = DogImages(args.data, "test", layout.classes, eval_transform(args.image_size))
        test_stats = evaluate(
            model, make_loader(test_set, args.batch_size, train=False, **loader_args), device
        )
        _log(info, f"Test Loss: {test_stats.loss:.6f}")
        _log(info, f"Test Accuracy: {test_stats.accuracy:.6f}")
        metrics.update(test_loss=test_stats.loss, test_accuracy=test_stats.accuracy)

    if info.is_main:
        export_artifact(model, config, class_names, args.image_size, Path(args.model_dir))
        output_dir = Path(args.output_data_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        _log(info, f"model saved to {args.model_dir}")
    if info.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return metrics


def cli(argv: list[str] | None = None) -> None:
    args, unknown = get_args_parser().parse_known_args(argv)
    if unknown:
        # Tuning jobs add hyperparameters of their own (e.g. _tuning_objective_metric).
        print(f"ignoring unknown arguments: {' '.join(unknown)}", file=sys.stderr, flush=True)
    main(args)


if __name__ == "__main__":
    cli()
