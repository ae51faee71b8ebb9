"""What a training job runs, and with what environment: the contracts of SageMaker's training
containers, read from the CreateTrainingJob request.

- SageMaker training toolkit (the AWS framework containers, SDK v2, `ops train`): the
  ``sagemaker_program`` and ``sagemaker_submit_directory`` hyperparameters name the entry script
  and a source tarball; ``sagemaker_torch_distributed_enabled`` asks for torchrun.
- SageMaker Python SDK v3 ``ModelTrainer``: a ``code`` channel and an ``sm_drivers`` channel
  whose ``sourcecode.json`` / ``distributed.json`` say what to run. We read those files and
  launch the command ourselves instead of running the SDK's drivers, which hard-code /opt/ml.

``InstanceCount`` > 1 with torchrun runs one torchrun agent per instance (``--nnodes N
--node_rank i``) rendezvousing on 127.0.0.1: real data-parallel processes. Without a
distribution setting, N independent copies run, as on AWS.

Code in the job reaches the local cloud's APIs as it reaches AWS's from a training container:
boto3 finds the endpoint, the job's region and credentials standing for the job's role in the
environment, and nothing of the local cloud's own AWS settings (`identity.aws_environment`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from ops.localcloud import loopback
from ops.localcloud.sagemaker.records import InvalidRequest, TrainingJob


@dataclass
class LaunchSpec:
    """What to run in each instance's code folder."""

    command: list[str]  # the user command, without any torchrun prefix
    source_tarball: str | None  # s3:// URI of a source tarball to unpack into code/
    code_channel: str | None  # or a channel holding the source folder
    torchrun: bool
    hyperparameters: dict[str, object]  # decoded, without sagemaker_* keys


def _decode(value: str) -> object:
    """SDKs JSON-encode hyperparameter values ('"train.py"', '0.01'); plain strings pass."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return value


# Hyperparameters SageMaker reserves for itself: a tuning job adds _tuning_objective_metric to
# every trial (DescribeTrainingJob shows it), but the training toolkit and the SDK's drivers do
# not pass it, nor sagemaker_*, to the script, whose plain parse_args() would refuse them.
RESERVED_HYPERPARAMETERS = frozenset({"_tuning_objective_metric"})


def _cli_args(hyperparameters: dict[str, object]) -> list[str]:
    """``--key value`` pairs as the SageMaker drivers build them: strings as they are, anything
    else JSON-encoded (``true``, ``0.01``, ``[1, 2]``); reserved names left out."""
    args: list[str] = []
    for key, value in hyperparameters.items():
        if key in RESERVED_HYPERPARAMETERS or key.startswith("sagemaker_"):
            continue
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return args


def _entry_command(entry: str) -> list[str]:
    if entry.endswith(".py"):
        return [sys.executable, entry]
    if entry.endswith(".sh"):
        return ["/bin/sh", entry]
    return [entry]


def launch_spec(request: dict, channel_dirs: dict[str, Path]) -> LaunchSpec:
    """Work out what the job runs from a CreateTrainingJob request (see the module doc)."""
    raw = request.get("HyperParameters") or {}
    decoded = {k: _decode(v) for k, v in raw.items()}
    user_hps = {k: v for k, v in decoded.items() if not k.startswith("sagemaker_")}
    if "sagemaker_program" in decoded:
        submit = decoded.get("sagemaker_submit_directory")
        if not isinstance(submit, str) or not submit.startswith("s3://"):
            raise InvalidRequest("sagemaker_submit_directory must be an s3:// URI of a tar.gz")
        torchrun = str(decoded.get("sagemaker_torch_distributed_enabled", "")).lower() == "true"
        return LaunchSpec(
            command=_entry_command(str(decoded["sagemaker_program"])) + _cli_args(user_hps),
            source_tarball=submit,
            code_channel=None,
            torchrun=torchrun,
            hyperparameters=user_hps,
        )
    drivers = channel_dirs.get("sm_drivers")
    if drivers is not None and (drivers / "sourcecode.json").is_file():
        return _sdk_v3_spec(drivers, user_hps, "code" if "code" in channel_dirs else None)
    raise InvalidRequest(
        "cannot tell what to run: expected the sagemaker_program/sagemaker_submit_directory "
        "hyperparameters (training toolkit) or an sm_drivers channel (SageMaker SDK v3)"
    )


def _sdk_v3_spec(drivers: Path, hyperparameters: dict, code_channel: str | None) -> LaunchSpec:
    source = json.loads((drivers / "sourcecode.json").read_text())
    distributed_file = drivers / "distributed.json"
    distributed = json.loads(distributed_file.read_text()) if distributed_file.is_file() else {}
    if source.get("command"):
        # As the SDK's sm_train.sh does: the command runs through a shell, without the
        # hyperparameters as arguments (they are in SM_HPS and hyperparameters.json).
        args = " ".join(shlex.quote(str(a)) for a in source.get("args") or [])
        command = ["/bin/sh", "-c", f"{source['command']} {args}".strip()]
    elif source.get("entry_script"):
        command = _entry_command(source["entry_script"]) + _cli_args(hyperparameters)
    else:
        raise InvalidRequest("sourcecode.json names neither entry_script nor command")
    # The SDK writes its Torchrun config ({"process_count_per_node": ..., "smp": ...}); an MPI
    # config has mpi_* keys, which we do not run.
    if any(key.startswith("mpi") for key in distributed):
        raise InvalidRequest("MPI distribution is not supported locally; use Torchrun")
    torchrun = bool(distributed) and command[0] == sys.executable
    return LaunchSpec(
        command=command,
        source_tarball=None,
        code_channel=code_channel,
        torchrun=torchrun,
        hyperparameters=hyperparameters,
    )


def instance_command(spec: LaunchSpec, hosts: list[str], index: int, master_port: int):
    """The command for instance ``index``: under torchrun, one agent per instance."""
    if not (spec.torchrun and spec.command[0] == sys.executable):
        return list(spec.command)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={len(hosts)}",
        f"--node_rank={index}",
        "--nproc_per_node=1",
        f"--master_addr={loopback.HOST}",
        f"--master_port={master_port}",
        *spec.command[1:],
    ]


@dataclass
class Instance:
    """One instance's folders, laid out like /opt/ml under the job's work folder."""

    host: str
    root: Path  # the job's work folder
    hosts: list[str]

    @property
    def dir(self) -> Path:
        return self.root / self.host


def environment(
    job: TrainingJob,
    spec: LaunchSpec,
    instance: Instance,
    channels: dict[str, Path],
    code_dir: Path,
    threads: int,
    aws: dict[str, str],
) -> dict[str, str]:
    """Create the instance's folders and config files; the SageMaker training environment.
    ``aws`` (see `identity.aws_environment`) replaces every AWS_* variable of the local cloud's own
    environment (a profile, keys, endpoints); the request's ``Environment`` may still set one."""
    host_dir, hosts = instance.dir, instance.hosts
    for sub in ("model", "output/data", "checkpoints", "input/config"):
        (host_dir / sub).mkdir(parents=True, exist_ok=True)
    request = job.request
    config_dir = host_dir / "input" / "config"
    (config_dir / "hyperparameters.json").write_text(
        json.dumps(request.get("HyperParameters") or {})
    )
    (config_dir / "resourceconfig.json").write_text(
        json.dumps({"current_host": instance.host, "hosts": hosts, "network_interface_name": "lo"})
    )
    (config_dir / "inputdataconfig.json").write_text(
        json.dumps(
            {
                c["ChannelName"]: {"TrainingInputMode": "File"}
                for c in request.get("InputDataConfig", [])
            }
        )
    )
    hps = spec.hyperparameters
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("AWS_")},
        **aws,
        **(request.get("Environment") or {}),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(code_dir), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": str(threads),
        "TRAINING_JOB_NAME": job.name,
        "TRAINING_JOB_ARN": job.arn,
        "SM_HOSTS": json.dumps(hosts),
        "SM_CURRENT_HOST": instance.host,
        "SM_NUM_GPUS": "0",
        "SM_NUM_CPUS": str(threads),
        "SM_MODEL_DIR": str(host_dir / "model"),
        "SM_OUTPUT_DIR": str(host_dir / "output"),
        "SM_OUTPUT_DATA_DIR": str(host_dir / "output" / "data"),
        "SM_INPUT_DIR": str(instance.root / "input"),
        "SM_INPUT_CONFIG_DIR": str(config_dir),
        "SM_CHECKPOINT_DIR": str(host_dir / "checkpoints"),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps(hps),
        "SM_USER_ARGS": json.dumps(_cli_args(hps)),
        "SM_MODULE_DIR": spec.source_tarball or str(code_dir),
    }
    for name, path in channels.items():
        env[f"SM_CHANNEL_{name.upper()}"] = str(path)
    for key, value in hps.items():
        env[f"SM_HP_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env
