"""`ops train --on ec2`: the same training script on the training host instead of a SageMaker job.

The host is the one the target's outputs name (`training_host_instance_id`, with the project at
`training_host_install_dir` and its virtual environment at `training_host_venv_dir`): on AWS,
Terraform's EC2 instance; locally, the local cloud's training host. Either way it is driven
through SSM Run Command (``AWS-RunShellScript``, no SSH), whose agent runs the commands with
``/bin/sh`` (dash on Ubuntu): the script is POSIX sh. It fetches the data from S3 into a run
folder, runs ``python -m ml.train`` with the project's virtual environment and puts
``model.tar.gz`` where a SageMaker job would: ``s3://<bucket>/models/<job>/output/``.

The fetch and put steps run on the host as ``python -m ops.ec2 fetch-data|put-model`` (the host
has the project and boto3; it may not have the AWS CLI).
"""

from __future__ import annotations

import argparse
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ops.errors import OpsError
from ops.metrics import parse_metrics
from ops.target import Target

SSM_TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut"}
HOST_OUTPUTS = ("training_host_instance_id", "training_host_install_dir", "training_host_venv_dir")
RUNS = "runs"  # per-run folders under the install dir
LOG_TAIL_LINES = 60  # of the training log, in the command's output (the last epochs, the test)


@dataclass(frozen=True)
class TrainingHost:
    instance_id: str
    install_dir: str
    venv_dir: str

    @classmethod
    def from_outputs(cls, outputs: dict[str, object]) -> TrainingHost:
        missing = [name for name in HOST_OUTPUTS if not outputs.get(name)]
        if missing:
            raise OpsError(
                f"the target's outputs lack {', '.join(missing)} (the training host: "
                "terraform/modules/training_host, enabled by a subnet, repo URL and commit)"
            )
        return cls(*(str(outputs[name]) for name in HOST_OUTPUTS))


def _flags(hyperparameters: dict[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in hyperparameters.items():
        args += [f"--{key}", str(value)]
    return args


def model_uri(bucket: str, name: str) -> str:
    return f"s3://{bucket}/models/{name}/output/model.tar.gz"


def remote_script(
    host: TrainingHost,
    region: str,
    bucket: str,
    data_uri: str,
    name: str,
    hyperparameters: dict[str, str],
) -> list[str]:
    """The commands for ``AWS-RunShellScript``: POSIX sh, one step a line, stopping at the
    first failure with its exit code (``set -eu``; no pipes, so nothing for pipefail to
    catch)."""
    work = f"{host.install_dir}/{RUNS}/{name}"
    python = f"{host.venv_dir}/bin/python"
    steps = [python, "-m", "ops.ec2"]  # this module's main(), on the host
    train = [
        python,
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
    log = shlex.quote(f"{work}/train.log")
    return [
        "set -eu",
        f"export AWS_DEFAULT_REGION={shlex.quote(region)}",
        f"cd {shlex.quote(host.install_dir)}",
        f"mkdir -p {shlex.quote(work)}",
        shlex.join([*steps, "fetch-data", data_uri, f"{work}/data"]),
        # SSM keeps the first 24,000 characters of stdout, and the final metrics come last: the
        # whole log stays on the host, the command's output ends with its last lines.
        "train_status=0",
        f"{shlex.join(train)} >{log} 2>&1 || train_status=$?",
        f"tail -n {LOG_TAIL_LINES} {log}",
        'if [ "$train_status" -ne 0 ]; then exit "$train_status"; fi',
        shlex.join([*steps, "put-model", f"{work}/model", model_uri(bucket, name)]),
    ]


def train_on_host(
    target: Target,
    host: TrainingHost,
    data_uri: str,
    name: str,
    hyperparameters: dict[str, str],
    progress,
    poll_s: float = 2.0,
    timeout_s: int = 8 * 3600,
) -> tuple[str, dict[str, float]]:
    """Run the training script on ``host`` through the target's SSM; (model URI, metrics parsed
    from the command's output)."""
    ssm = target.client("ssm")
    commands = remote_script(host, target.region, target.bucket, data_uri, name, hyperparameters)
    try:
        command = ssm.send_command(
            InstanceIds=[host.instance_id],
            DocumentName="AWS-RunShellScript",
            Comment=f"dogops train {name}"[:100],
            Parameters={"commands": commands, "executionTimeout": [str(timeout_s)]},
            TimeoutSeconds=600,
        )["Command"]
        command_id = command["CommandId"]
        progress("ec2-started", {"name": name, "host": host.instance_id, "command": command_id})
        invocation = _wait(ssm, command_id, host.instance_id, progress, poll_s)
    except (ClientError, BotoCoreError) as exc:
        raise OpsError(f"SSM Run Command on {host.instance_id} failed: {exc}") from exc
    output = invocation.get("StandardOutputContent", "")
    if invocation["Status"] != "Success":
        error = invocation.get("StandardErrorContent", "")[-2000:] or output[-2000:]
        raise OpsError(
            f"training on {host.instance_id} ended {invocation['Status']} (exit "
            f"{invocation.get('ResponseCode')}; SSM command {command_id}):\n{error}"
        )
    metrics = {k: v[-1] for k, v in parse_metrics(output).items()}
    return model_uri(target.bucket, name), metrics


def _wait(ssm, command_id: str, instance_id: str, progress, poll_s: float) -> dict:
    """Poll GetCommandInvocation until the invocation ends. Right after SendCommand the
    invocation may not exist yet (InvocationDoesNotExist): keep polling. Ctrl-C stops waiting,
    not the command: say so, and how to cancel it."""
    try:
        while True:
            try:
                invocation = ssm.get_command_invocation(
                    CommandId=command_id, InstanceId=instance_id
                )
            except ssm.exceptions.InvocationDoesNotExist:
                invocation = {"Status": "Pending"}
            progress("ec2-status", {"status": invocation["Status"]})
            if invocation["Status"] in SSM_TERMINAL:
                return invocation
            time.sleep(poll_s)
    except KeyboardInterrupt:
        raise OpsError(
            f"interrupted: SSM command {command_id} keeps running on {instance_id}; cancel it "
            f"with `aws ssm cancel-command --command-id {command_id}`"
        ) from None


# -- the steps that run on the host ---------------------------------------------------------


def fetch_data(uri: str, folder: Path) -> int:
    """Every object under ``uri`` into ``folder``; how many (none is an error)."""
    from ops.s3 import download_prefix

    count = download_prefix(boto3.client("s3"), uri, folder)
    if count == 0:
        raise OpsError(f"no objects under {uri}")
    return count


def put_model(folder: Path, uri: str) -> None:
    """Pack ``folder`` as a model.tar.gz (files at the archive's root) and upload it to ``uri``."""
    from ops.s3 import put_tarball

    put_tarball(boto3.client("s3"), folder, uri)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The S3 steps of `ops train --on ec2` (host side)")
    steps = parser.add_subparsers(dest="step", required=True)
    fetch = steps.add_parser("fetch-data", help="download every object under an S3 prefix")
    fetch.add_argument("uri")
    fetch.add_argument("folder", type=Path)
    put = steps.add_parser("put-model", help="pack a model folder and upload it")
    put.add_argument("folder", type=Path)
    put.add_argument("uri")
    args = parser.parse_args(argv)
    try:
        if args.step == "fetch-data":
            print(f"fetched {fetch_data(args.uri, args.folder)} files from {args.uri}", flush=True)
        else:
            put_model(args.folder, args.uri)
            print(f"model uploaded to {args.uri}", flush=True)
    except (OpsError, ClientError, BotoCoreError) as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
