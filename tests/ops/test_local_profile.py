"""The local profile's search space trains a working model on the quickstart's data set.

`make quickstart` tunes over the local profile's ranges and trains with the best trial's values,
so whatever point tuning picks must give a model that classifies the synthetic set. The corners
run here are the slowest learner (smallest learning rate, largest batch: the fewest and smallest
steps) and the noisiest (largest learning rate, smallest batch). The profile before this test
(64 px, 8 epochs, learning rates up to 0.1, batches up to 512) ended as low as 0.2 on 5 classes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ops.metrics import parse_metrics
from ops.synth import synthesize
from ops.target import train_defaults
from tests.conftest import REPO

PROFILE = train_defaults("local").profile
CORNERS = {
    "slowest": (min(PROFILE.learning_rates), max(PROFILE.batch_sizes)),
    "noisiest": (max(PROFILE.learning_rates), min(PROFILE.batch_sizes)),
}


@pytest.fixture(scope="module")
def quickstart_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make quickstart` synthesises (`ops data synth DIR --classes 5 --per-class 24`)."""
    root = tmp_path_factory.mktemp("quickstart") / "synth"
    synthesize(root, classes=5, per_class=24, size=128, seed=0)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("corner", sorted(CORNERS))
def test_every_corner_of_the_local_search_space_learns_the_synthetic_set(
    quickstart_data: Path, tmp_path: Path, corner: str
) -> None:
    learning_rate, batch_size = CORNERS[corner]
    flags = {
        **PROFILE.hyperparameters(),
        "learning-rate": str(learning_rate),
        "batch-size": str(batch_size),
    }
    command = [sys.executable, "-m", "ml.train", "--data", str(quickstart_data)]
    for folder in ("model-dir", "output-data-dir", "checkpoint-dir"):
        command += [f"--{folder}", str(tmp_path / folder)]
    for name, value in flags.items():
        command += [f"--{name}", value]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [accuracy] = parse_metrics(done.stdout)["Test Accuracy"]
    assert accuracy >= 0.9, done.stdout
