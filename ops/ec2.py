"""`ops train --on ec2`: the same training script on a plain host instead of a SageMaker job.

On AWS the host is Terraform's training instance (output ``training_host_instance_id``), driven
through SSM Run Command (no SSH): it syncs the data from S3, runs ``python -m ml.train`` from
the project its user data installed, and uploads ``model.tar.gz``. Locally the host is this
machine. Either way the model lands where a SageMaker job would put it:
``s3://<bucket>/models/<job>/output/model.tar.gz``.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ops.errors import OpsError
from ops.metrics import parse_metrics
from ops.target import Target

REMOTE_PROJECT = "/opt/dogops/src"  # where the training host's user data installs the project
REMOTE_WORK = "/opt/dogops/runs"
SSM_TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut", "Cancelling"}


def _flags(hyperparameters: dict[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in hyperparameters.items():
        args += [f"--{key}", str(value)]
    return args


def train_here(
    target: Target, data: Path, name: str, hyperparameters: dict[str, str], progress
) -> tuple[str, dict[str, float]]:
    """Run the training script on this machine; upload the model to the target's S3."""
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        work = Path(tmp)
        command = [
            sys.executable,
            "-m",
            "ml.train",
            "--data",
            str(data),
            "--model-dir",
            str(work / "model"),
            "--output-data-dir",
            str(work / "output"),
            "--checkpoint-dir",
            str(work / "checkpoints"),
            *_flags(hyperparameters),
        ]
        progress("ec2-started", {"name": name, "host": "this machine"})
        lines: list[str] = []
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            progress("ec2-log", {"line": line.rstrip("\n")})
        if process.wait() != 0:
            tail = "".join(lines[-12:])
            raise OpsError(f"training on this machine failed (exit {process.returncode}):\n{tail}")
        archive = work / "model.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted((work / "model").iterdir()):
                tar.add(path, arcname=path.name)
        key = f"models/{name}/output/model.tar.gz"
        try:
            target.client("s3").upload_file(str(archive), target.bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise OpsError(
                f"could not upload the model to s3://{target.bucket}/{key}: {exc}"
            ) from exc
    metrics = {k: v[-1] for k, v in parse_metrics("".join(lines)).items()}
    return f"s3://{target.bucket}/{key}", metrics


def remote_script(bucket: str, data_uri: str, name: str, hyperparameters: dict[str, str]) -> str:
    work = f"{REMOTE_WORK}/{name}"
    train = shlex.join(
        [
            "python3",
            "-m",
            "ml.train",
            "--data",
            f"{work}/data",
            "--model-dir",
            f"{work}/model",
            "--output-data-dir",
            f"{work}/output",
            "--checkpoint-dir",
            f"{work}/checkpoints",
            *_flags(hyperparameters),
        ]
    )
    destination = f"s3://{bucket}/models/{name}/output/model.tar.gz"
    return "\n".join(
        [
            "set -euo pipefail",
            f"mkdir -p {shlex.quote(work)}",
            f"aws s3 sync --only-show-errors {shlex.quote(data_uri)} {shlex.quote(work + '/data')}",
            f"cd {REMOTE_PROJECT}",
            train,
            f"tar -czf {shlex.quote(work + '/model.tar.gz')} -C {shlex.quote(work + '/model')} .",
            f"aws s3 cp --only-show-errors {shlex.quote(work + '/model.tar.gz')} "
            f"{shlex.quote(destination)}",
        ]
    )


def train_on_host(
    target: Target,
    data_uri: str,
    name: str,
    hyperparameters: dict[str, str],
    progress,
    poll_s: float = 5.0,
    timeout_s: int = 8 * 3600,
) -> tuple[str, dict[str, float]]:
    instance = target.outputs.get("training_host_instance_id")
    if not instance:
        raise OpsError("Terraform outputs lack training_host_instance_id (the EC2 training host)")
    ssm = target.client("ssm")
    script = remote_script(target.bucket, data_uri, name, hyperparameters)
    try:
        command = ssm.send_command(
            InstanceIds=[str(instance)],
            DocumentName="AWS-RunShellScript",
            Comment=f"dogops train {name}"[:100],
            Parameters={"commands": script.splitlines(), "executionTimeout": [str(timeout_s)]},
            TimeoutSeconds=600,
        )["Command"]
        progress("ec2-started", {"name": name, "host": instance, "command": command["CommandId"]})
        while True:
            try:
                invocation = ssm.get_command_invocation(
                    CommandId=command["CommandId"], InstanceId=str(instance)
                )
            except ssm.exceptions.InvocationDoesNotExist:
                time.sleep(poll_s)
                continue
            progress("ec2-status", {"status": invocation["Status"]})
            if invocation["Status"] in SSM_TERMINAL:
                break
            time.sleep(poll_s)
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"SSM Run Command on {instance} failed: {exc}") from exc
    output = invocation.get("StandardOutputContent", "")
    if invocation["Status"] != "Success":
        error = invocation.get("StandardErrorContent", "")[-2000:]
        raise OpsError(f"training on {instance} ended {invocation['Status']}:\n{error}")
    metrics = {k: v[-1] for k, v in parse_metrics(output).items()}
    return f"s3://{target.bucket}/models/{name}/output/model.tar.gz", metrics
