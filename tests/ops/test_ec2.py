"""The script `ops train --on ec2` sends through SSM is POSIX sh: dash accepts it, paths with
spaces survive quoting, and it stops at the first failing step with that step's exit code."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ops.ec2 import TrainingHost, remote_script

# A python that records its arguments, one per line, says which step it is, and fails on the
# step named by FAIL_ON.
FAKE_PYTHON = """#!/bin/sh
for arg in "$@"; do printf '%s\\n' "$arg"; done >> "$CALLS"
echo --- >> "$CALLS"
echo "python $2 $3"
[ "$3" != "$FAIL_ON" ] || exit 5
"""


def script_for(install_dir: Path) -> list[str]:
    host = TrainingHost("i-0123456789abcdef0", str(install_dir), f"{install_dir}/.venv")
    hyperparameters = {"learning-rate": "0.02", "arch": "resnet18"}
    data_uri = "s3://bucket/data/dog images"
    return remote_script(host, "eu-west-1", "bucket", data_uri, "run-1", hyperparameters)


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """An install dir with a space in its path and a fake venv python."""
    install_dir = tmp_path / "opt" / "dog ops"
    python = install_dir / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return install_dir


def run(script: list[str], tmp_path: Path, fail_on: str = ""):
    """(the finished ``/bin/sh`` run of ``script``, the fake python's calls)."""
    path = tmp_path / "_script.sh"
    path.write_text("\n".join(script) + "\n")
    calls = tmp_path / "calls"
    env = {"PATH": "/usr/bin:/bin", "CALLS": str(calls), "FAIL_ON": fail_on}
    result = subprocess.run(
        ["/bin/sh", str(path)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    text = calls.read_text() if calls.exists() else ""
    return result, [block.strip("\n").split("\n") for block in text.split("---\n") if block]


def test_the_script_parses_as_posix_sh(host):
    script = "\n".join(script_for(host))
    assert "pipefail" not in script
    checker = shutil.which("dash") or "/bin/sh"
    result = subprocess.run([checker, "-n"], input=script, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_script_runs_each_step_with_the_venv_python_under_bin_sh(host, tmp_path):
    result, calls = run(script_for(host), tmp_path)
    assert result.returncode == 0, result.stderr
    work = f"{host}/runs/run-1"
    assert [call[:3] for call in calls] == [
        ["-m", "ops.ec2", "fetch-data"],
        ["-m", "ml.train", "--data"],
        ["-m", "ops.ec2", "put-model"],
    ]
    assert calls[0][3:] == ["s3://bucket/data/dog images", f"{work}/data"]
    flags = dict(zip(calls[1][2::2], calls[1][3::2], strict=True))
    assert (flags["--data"], flags["--model-dir"]) == (f"{work}/data", f"{work}/model")
    assert (flags["--learning-rate"], flags["--arch"]) == ("0.02", "resnet18")
    assert calls[2][3:] == [f"{work}/model", "s3://bucket/models/run-1/output/model.tar.gz"]
    assert Path(work).is_dir()


def test_the_script_stops_at_the_first_failing_step(host, tmp_path):
    result, calls = run(script_for(host), tmp_path, fail_on="fetch-data")
    assert result.returncode == 5
    assert len(calls) == 1  # no training, no upload


def test_a_failed_training_ends_the_script_with_its_code_after_the_end_of_its_log(host, tmp_path):
    result, calls = run(script_for(host), tmp_path, fail_on="--data")
    assert result.returncode == 5
    assert [call[2] for call in calls] == ["fetch-data", "--data"]  # no upload
    # Training output goes to the run's log on the host; the command's output ends with it.
    assert (host / "runs" / "run-1" / "train.log").read_text() == "python ml.train --data\n"
    assert result.stdout.endswith("python ml.train --data\n")
