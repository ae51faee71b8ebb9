"""The training script end to end on the synthetic set (CPU, random weights)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ops.metrics import parse_metrics
from tests.conftest import REPO, TRAIN_FLAGS, run_training

pytestmark = pytest.mark.slow


def test_training_learns_and_prints_parseable_metrics(trained: tuple[Path, str]) -> None:
    out, stdout = trained
    metrics = parse_metrics(stdout)
    assert len(metrics["Train Loss"]) == 8
    assert len(metrics["Validation Accuracy"]) == 8
    assert len(metrics["Test Loss"]) == 1 and len(metrics["Test Accuracy"]) == 1
    # 4 classes: chance is 0.25.
    assert max(metrics["Validation Accuracy"][-3:]) >= 0.6, stdout
    assert metrics["Test Accuracy"][0] >= 0.5, stdout
    assert all(0.0 <= a <= 1.0 for a in metrics["Validation Accuracy"])
    assert metrics["Train Loss"][-1] < metrics["Train Loss"][0]
    saved = json.loads((out / "output" / "metrics.json").read_text())
    assert saved["test_accuracy"] == pytest.approx(metrics["Test Accuracy"][0], abs=1e-6)


def test_artifact_is_self_contained_for_the_serving_container(trained: tuple[Path, str]) -> None:
    model_dir = trained[0] / "model"
    config = json.loads((model_dir / "model_config.json").read_text())
    assert config["arch"] == "resnet18" and config["num_classes"] == 4
    assert config["class_names"][0] == "Affenpinscher" and config["image_size"] == 64
    assert config["feature_norm"] is True  # a loader must rebuild the norm layer before the head
    assert (model_dir / "code" / "inference.py").is_file()
    assert {"model.py", "data.py", "url_fetch.py", "inference.py"} <= {
        p.name for p in (model_dir / "code" / "ml").iterdir()
    }
    state = torch.load(model_dir / "model.pth", weights_only=True)
    assert state["head.3.weight"].shape[0] == 4


def test_seed_flag_spellings_and_tuning_extras_are_accepted(
    synth_data: Path, tmp_path: Path
) -> None:
    result = run_training(
        synth_data,
        tmp_path,
        "--epochs",
        "1",
        "--batch_size",
        "32",
        "--learning_rate",
        "0.01",
        "--test",
        "false",
        "--_tuning_objective_metric",
        "Test Loss",
    )
    assert "ignoring unknown arguments: --_tuning_objective_metric" in result.stderr
    assert "Test Loss" not in result.stdout
    assert (tmp_path / "model" / "model.pth").is_file()


def test_killed_run_resumes_from_its_last_checkpoint(synth_data: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "ml.train",
        "--data",
        str(synth_data),
        "--model-dir",
        str(tmp_path / "model"),
        "--output-data-dir",
        str(tmp_path / "output"),
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        *TRAIN_FLAGS,
        "--epochs",
        "50",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("checkpoint: epoch 2 saved"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert not (tmp_path / "model" / "model.pth").exists(), "the killed run must not have finished"
    saved_epoch = torch.load(tmp_path / "checkpoints" / "checkpoint.pth", weights_only=False)[
        "epoch"
    ]
    assert saved_epoch >= 2

    result = run_training(synth_data, tmp_path, "--epochs", str(saved_epoch + 2), "--resume")
    assert (
        f"resumed from {tmp_path / 'checkpoints' / 'checkpoint.pth'} after epoch {saved_epoch}"
        in result.stdout
    )
    epochs_run = [
        line.split()[1].rstrip(":")
        for line in result.stdout.splitlines()
        if line.startswith("epoch ")
    ]
    assert epochs_run == [
        f"{saved_epoch + 1}/{saved_epoch + 2}",
        f"{saved_epoch + 2}/{saved_epoch + 2}",
    ]
    assert (tmp_path / "model" / "model.pth").is_file()


def test_resume_refuses_a_checkpoint_of_another_architecture(
    synth_data: Path, tmp_path: Path
) -> None:
    run_training(synth_data, tmp_path, "--epochs", "1", "--test", "false")
    result = run_training(
        synth_data, tmp_path, "--epochs", "2", "--resume", "--arch", "resnet34", check=False
    )
    assert result.returncode != 0
    assert "is for" in result.stderr and "resnet18" in result.stderr


def test_two_process_torchrun_trains_data_parallel(synth_data: Path, tmp_path: Path) -> None:
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    started = time.monotonic()
    result = run_training(
        synth_data, tmp_path, "--epochs", "3", "--learning-rate", "0.003", launcher=torchrun
    )
    assert time.monotonic() - started < 300
    assert "world_size=2" in result.stdout
    metrics = parse_metrics(result.stdout)
    # Only rank 0 prints: one line per epoch, not one per process.
    assert len(metrics["Train Loss"]) == 3 and len(metrics["Test Loss"]) == 1
    assert result.stdout.count("model saved to") == 1
    # The epoch covers the whole training split (96 images) across both ranks, not 2 x 96.
    assert "epoch 1/3: 96 images" in result.stdout
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint.pth"]
    assert (tmp_path / "model" / "model.pth").is_file()
