"""Fixtures shared by all tests: fake AWS credentials, a synthetic data set, and one trained
model artifact (trained once per session by the real training script)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
# Small enough to train in seconds on 2 CPU cores, large enough to learn: 4 classes, 64 px.
TRAIN_FLAGS = [
    "--arch",
    "resnet18",
    "--weights",
    "none",
    "--image-size",
    "64",
    "--batch-size",
    "16",
]


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may use real credentials or reach AWS."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, classes=4, per_class=24, size=96, seed=0)
    return root


def run_training(
    data: Path, out: Path, *extra: str, launcher: list[str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run ``python -m ml.train`` (or under ``launcher``, e.g. torchrun) into ``out``."""
    command = [
        *(launcher or [sys.executable]),
        "-m",
        "ml.train",
        "--data",
        str(data),
        "--model-dir",
        str(out / "model"),
        "--output-data-dir",
        str(out / "output"),
        "--checkpoint-dir",
        str(out / "checkpoints"),
        *TRAIN_FLAGS,
        *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(
            f"training failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def trained(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(run folder, stdout) of an 8-epoch training run on the synthetic set."""
    out = tmp_path_factory.mktemp("trained")
    result = run_training(synth_data, out, "--epochs", "8", "--learning-rate", "0.003")
    return out, result.stdout


@contextlib.contextmanager
def model_server_process(
    trained_run: Path, folder: Path, settings: dict[str, str]
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """``python -m ops.model_server`` serving the run's model as ``model.tar.gz`` on a free port,
    with ``settings`` added to its environment: (base URL, process, stderr log file)."""
    from ops.artifacts import pack_artifact

    artifact = pack_artifact(trained_run / "model", folder / "model.tar.gz")
    log = folder / "server.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "ops.model_server", str(artifact), "--port", "0"],
            cwd=REPO,
            env={**os.environ, **settings},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        first_line = process.stdout.readline()
        assert first_line.startswith("listening on "), log.read_text()
        yield first_line.split()[-1], process, log
    finally:
        process.terminate()
        process.wait(timeout=30)
