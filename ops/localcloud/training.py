"""SageMaker training jobs, run for real on this machine.

A job gets a work folder laid out like ``/opt/ml`` for each instance (``algo-1``, ``algo-2``,
...): data channels and the source code are fetched from (local) S3, the entry script runs in a
subprocess with the SageMaker training environment, and each instance's output goes to
CloudWatch Logs as ``<job>/algo-N-<epoch>`` in ``/aws/sagemaker/TrainingJobs``, which is where
the SageMaker SDKs stream logs from. Metric definitions are applied to algo-1's output. On
success ``model/`` is packed to ``<S3OutputPath>/<job>/output/model.tar.gz``; checkpoints are
synced to ``CheckpointConfig.S3Uri`` while the job runs and restored from there when it starts.

Launch contracts understood (see `launch_spec`):

- SageMaker training toolkit (the AWS framework containers, SDK v2, `ops train`): the
  ``sagemaker_program`` and ``sagemaker_submit_directory`` hyperparameters name the entry script
  and a source tarball; ``sagemaker_torch_distributed_enabled`` asks for torchrun.
- SageMaker Python SDK v3 ``ModelTrainer``: a ``code`` channel and an ``sm_drivers`` channel
  whose ``sourcecode.json`` / ``distributed.json`` say what to run. We read those files and
  launch the command ourselves instead of running the SDK's drivers, which hard-code /opt/ml.

``InstanceCount`` > 1 with torchrun runs one torchrun agent per instance (``--nnodes N
--node_rank i``) rendezvousing on 127.0.0.1: real data-parallel processes. Without a
distribution setting, N independent copies run, as on AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import boto3

from ops.errors import OpsError
from ops.localcloud.protocol import AwsError, now, sagemaker_arn, validation_error
from ops.s3 import parse_s3_uri

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
FAILURE_TAIL_LINES = 12
STOP_GRACE_S = 10.0


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


def _cli_args(hyperparameters: dict[str, object]) -> list[str]:
    """``--key value`` pairs as the SageMaker drivers build them: strings as they are, anything
    else JSON-encoded (``true``, ``0.01``, ``[1, 2]``)."""
    args: list[str] = []
    for key, value in hyperparameters.items():
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
            raise validation_error("sagemaker_submit_directory must be an s3:// URI of a tar.gz")
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
    raise validation_error(
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
        raise validation_error("sourcecode.json names neither entry_script nor command")
    # The SDK writes its Torchrun config ({"process_count_per_node": ..., "smp": ...}); an MPI
    # config has mpi_* keys, which we do not run.
    if any(key.startswith("mpi") for key in distributed):
        raise validation_error("MPI distribution is not supported locally; use Torchrun")
    torchrun = bool(distributed) and command[0] == sys.executable
    return LaunchSpec(
        command=command,
        source_tarball=None,
        code_channel=code_channel,
        torchrun=torchrun,
        hyperparameters=hyperparameters,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_s3(uri: str) -> tuple[str, str]:
    """`ops.s3.parse_s3_uri` (bucket, key or prefix without a trailing slash), failing as AWS
    fails a request: with a ValidationException."""
    try:
        return parse_s3_uri(uri)
    except OpsError as exc:
        raise validation_error(str(exc)) from None


@dataclass
class TrainingJob:
    name: str
    region: str
    request: dict
    created: datetime = field(default_factory=now)
    status: str = "InProgress"
    secondary_status: str = "Starting"
    transitions: list[dict] = field(default_factory=list)
    failure_reason: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    metric_times: dict[str, datetime] = field(default_factory=dict)
    artifact: str | None = None
    tuning_job_arn: str | None = None
    cpu_share: int = 1  # jobs running side by side (tuning trials) split the cores
    stop_requested: threading.Event = field(default_factory=threading.Event)
    processes: list[subprocess.Popen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def arn(self) -> str:
        return sagemaker_arn(self.region, "training-job", self.name)

    def set_secondary(self, status: str, message: str) -> None:
        with self.lock:
            stamp = now()
            if self.transitions:
                self.transitions[-1]["EndTime"] = stamp
            self.transitions.append(
                {"Status": status, "StartTime": stamp, "StatusMessage": message}
            )
            self.secondary_status = status

    def finish(self, status: str, secondary: str, message: str, reason: str | None = None) -> None:
        self.set_secondary(secondary, message)
        with self.lock:
            self.transitions[-1]["EndTime"] = now()
            self.failure_reason = reason
            self.ended = now()
            self.status = status

    def describe(self) -> dict:
        r = self.request
        with self.lock:
            response = {
                "TrainingJobName": self.name,
                "TrainingJobArn": self.arn,
                "TuningJobArn": self.tuning_job_arn,
                "ModelArtifacts": {"S3ModelArtifacts": self.artifact or ""},
                "TrainingJobStatus": self.status,
                "SecondaryStatus": self.secondary_status,
                "FailureReason": self.failure_reason,
                "HyperParameters": r.get("HyperParameters", {}),
                "AlgorithmSpecification": r["AlgorithmSpecification"],
                "RoleArn": r["RoleArn"],
                "InputDataConfig": r.get("InputDataConfig", []),
                "OutputDataConfig": r["OutputDataConfig"],
                "ResourceConfig": r["ResourceConfig"],
                "StoppingCondition": r.get("StoppingCondition", {"MaxRuntimeInSeconds": 86400}),
                "CheckpointConfig": r.get("CheckpointConfig"),
                "Environment": r.get("Environment"),
                "CreationTime": self.created,
                "TrainingStartTime": self.started,
                "TrainingEndTime": self.ended,
                "LastModifiedTime": self.ended or now(),
                "SecondaryStatusTransitions": [dict(t) for t in self.transitions],
                "FinalMetricDataList": [
                    {"MetricName": k, "Value": v, "Timestamp": self.metric_times[k]}
                    for k, v in self.metrics.items()
                ],
                "EnableNetworkIsolation": r.get("EnableNetworkIsolation", False),
                "EnableInterContainerTrafficEncryption": r.get(
                    "EnableInterContainerTrafficEncryption", False
                ),
                "EnableManagedSpotTraining": r.get("EnableManagedSpotTraining", False),
            }
            if self.started:
                end = self.ended or now()
                seconds = max(1, int((end - self.started).total_seconds()))
                response["TrainingTimeInSeconds"] = seconds
                response["BillableTimeInSeconds"] = seconds
            return response

    def summary(self) -> dict:
        with self.lock:
            return {
                "TrainingJobName": self.name,
                "TrainingJobArn": self.arn,
                "CreationTime": self.created,
                "TrainingEndTime": self.ended,
                "LastModifiedTime": self.ended or now(),
                "TrainingJobStatus": self.status,
                "SecondaryStatus": self.secondary_status,
            }


class _LogPump:
    """Lines of one instance's output -> CloudWatch Logs (batched), a tail, and metrics."""

    def __init__(self, runner: TrainingRunner, job: TrainingJob, host: str, parse: bool):
        self.runner = runner
        self.job = job
        self.stream = f"{job.name}/{host}-{int(time.time())}"
        self.tail: deque[str] = deque(maxlen=FAILURE_TAIL_LINES)
        self.parse = parse
        self.definitions = [
            (d["Name"], re.compile(d["Regex"]))
            for d in job.request["AlgorithmSpecification"].get("MetricDefinitions", [])
        ]
        logs = runner.client("logs", job.region)
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=self.stream)

    def pump(self, pipe) -> None:
        pending: list[dict] = []
        last_flush = time.monotonic()
        for line in iter(pipe.readline, ""):
            text = line.rstrip("\n")
            self.tail.append(text)
            pending.append({"timestamp": int(time.time() * 1000), "message": text or " "})
            if self.parse:
                self._metrics(text)
            if len(pending) >= 200 or time.monotonic() - last_flush > 0.5:
                self._flush(pending)
                pending, last_flush = [], time.monotonic()
        self._flush(pending)

    def _metrics(self, text: str) -> None:
        for name, regex in self.definitions:
            match = regex.search(text)
            if match:
                try:
                    value = float(match.group(1))
                except (IndexError, ValueError):
                    continue
                with self.job.lock:
                    self.job.metrics[name] = value
                    self.job.metric_times[name] = now()

    def _flush(self, events: list[dict]) -> None:
        if events:
            logs = self.runner.client("logs", self.job.region)
            logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=self.stream, logEvents=events)


class TrainingRunner:
    """Runs training jobs in background threads; the SageMaker API layer owns the records."""

    def __init__(self, moto_url: str, work_root: Path, cpus: int | None = None):
        self.moto_url = moto_url
        self.work_root = work_root
        self.cpus = cpus or os.cpu_count() or 1
        self._clients: dict[tuple[str, str], object] = {}
        self._clients_lock = threading.Lock()

    def client(self, service: str, region: str):
        with self._clients_lock:
            key = (service, region)
            if key not in self._clients:
                self._clients[key] = boto3.client(
                    service,
                    endpoint_url=self.moto_url,
                    region_name=region,
                    aws_access_key_id="localcloud",
                    aws_secret_access_key="localcloud",
                )
            return self._clients[key]

    def start(self, job: TrainingJob, on_done=None) -> threading.Thread:
        thread = threading.Thread(
            target=self._run, args=(job, on_done), daemon=True, name=f"job-{job.name}"
        )
        thread.start()
        return thread

    def stop(self, job: TrainingJob) -> None:
        job.stop_requested.set()
        with job.lock:
            if job.status == "InProgress":
                job.status = "Stopping"
            processes = list(job.processes)
        for process in processes:
            _signal_group(process, signal.SIGTERM)

    # -- the job's life ---------------------------------------------------------------

    def _run(self, job: TrainingJob, on_done) -> None:
        try:
            self._execute(job)
        except AwsError as exc:
            job.finish("Failed", "Failed", "Training job failed", f"ClientError: {exc.message}")
        except Exception as exc:  # a bug or an environment problem: report it on the job
            job.finish(
                "Failed",
                "Failed",
                "Training job failed",
                f"InternalServerError: {type(exc).__name__}: {exc}"[:1024],
            )
        finally:
            if on_done:
                on_done(job)

    def _execute(self, job: TrainingJob) -> None:
        request = job.request
        root = self.work_root / job.name
        hosts = [f"algo-{i + 1}" for i in range(int(request["ResourceConfig"]["InstanceCount"]))]
        job.set_secondary("Starting", "Preparing the instances for training")
        self._ensure_log_group(job.region)
        job.set_secondary("Downloading", "Downloading input data")
        channels = self._download_channels(job, root / "input" / "data")
        spec = launch_spec(request, channels)
        code_dir = root / "code"
        if spec.source_tarball:
            self._download_tarball(job.region, spec.source_tarball, code_dir)
        elif spec.code_channel:
            code_dir = channels[spec.code_channel]
        checkpoint_uri = (request.get("CheckpointConfig") or {}).get("S3Uri")
        if job.stop_requested.is_set():
            job.finish("Stopped", "Stopped", "Training job stopped before it started")
            return

        job.set_secondary("Training", "Training image download completed. Training in progress.")
        with job.lock:
            job.started = now()
        pumps, threads = [], []
        master_port = _free_port()
        for index, host in enumerate(hosts):
            host_dir = root / host
            if checkpoint_uri:
                self._download_prefix(job.region, checkpoint_uri, host_dir / "checkpoints")
            env = self._environment(job, spec, hosts, host, host_dir, root, channels, code_dir)
            command = list(spec.command)
            if spec.torchrun:
                command = (
                    [
                        sys.executable,
                        "-m",
                        "torch.distributed.run",
                        f"--nnodes={len(hosts)}",
                        f"--node_rank={index}",
                        "--nproc_per_node=1",
                        "--master_addr=127.0.0.1",
                        f"--master_port={master_port}",
                        *command[1:],
                    ]
                    if command[0] == sys.executable
                    else command
                )
            process = subprocess.Popen(
                command,
                cwd=code_dir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
            with job.lock:
                job.processes.append(process)
            pump = _LogPump(self, job, host, parse=index == 0)
            pumps.append(pump)
            thread = threading.Thread(target=pump.pump, args=(process.stdout,), daemon=True)
            thread.start()
            threads.append(thread)

        exit_codes = self._wait(job, checkpoint_uri, root / "algo-1" / "checkpoints")
        for thread in threads:
            thread.join(timeout=30)
        if checkpoint_uri:
            self._upload_folder(job.region, root / "algo-1" / "checkpoints", checkpoint_uri)
        if job.stop_requested.is_set():
            job.finish("Stopped", "Stopped", "Training job stopped")
            return
        failed = [(host, code) for host, code in zip(hosts, exit_codes, strict=True) if code != 0]
        if failed:
            host, code = failed[0]
            tail = "\n".join(pumps[hosts.index(host)].tail)
            reason = f"AlgorithmError: ExecuteUserScriptError: ExitCode {code} on {host}\n{tail}"
            job.finish("Failed", "Failed", "Training job failed", reason[-1024:])
            return
        job.set_secondary("Uploading", "Uploading generated training model")
        output_path = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        artifact = f"{output_path}/{job.name}/output/model.tar.gz"
        self._upload_tar(job.region, root / "algo-1" / "model", artifact)
        self._upload_tar(
            job.region,
            root / "algo-1" / "output" / "data",
            f"{output_path}/{job.name}/output/output.tar.gz",
        )
        with job.lock:
            job.artifact = artifact
        job.finish("Completed", "Completed", "Training job completed")

    def _wait(self, job: TrainingJob, checkpoint_uri: str | None, checkpoints: Path) -> list[int]:
        """Wait for every instance; sync checkpoints meanwhile; enforce stop and max runtime."""
        max_runtime = (job.request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        deadline = time.monotonic() + max_runtime if max_runtime else None
        synced_at = 0.0
        uploaded: dict[Path, float] = {}
        stop_sent: float | None = None
        while True:
            codes = [p.poll() for p in job.processes]
            if all(c is not None for c in codes):
                return codes
            if deadline and time.monotonic() > deadline and not job.stop_requested.is_set():
                job.stop_requested.set()
                for process in job.processes:
                    _signal_group(process, signal.SIGTERM)
            if job.stop_requested.is_set():
                stop_sent = stop_sent or time.monotonic()
                if time.monotonic() - stop_sent > STOP_GRACE_S:
                    for process in job.processes:
                        _signal_group(process, signal.SIGKILL)
            elif any(c not in (None, 0) for c in codes):
                # One instance failed: the others would wait on it forever (rendezvous).
                for process, code in zip(job.processes, codes, strict=True):
                    if code is None:
                        _signal_group(process, signal.SIGTERM)
            if checkpoint_uri and time.monotonic() - synced_at > 2.0:
                self._upload_folder(job.region, checkpoints, checkpoint_uri, uploaded)
                synced_at = time.monotonic()
            time.sleep(0.2)

    def _environment(self, job, spec, hosts, host, host_dir, root, channels, code_dir) -> dict:
        for sub in ("model", "output/data", "checkpoints", "input/config"):
            (host_dir / sub).mkdir(parents=True, exist_ok=True)
        request = job.request
        config_dir = host_dir / "input" / "config"
        (config_dir / "hyperparameters.json").write_text(
            json.dumps(request.get("HyperParameters") or {})
        )
        (config_dir / "resourceconfig.json").write_text(
            json.dumps({"current_host": host, "hosts": hosts, "network_interface_name": "lo"})
        )
        (config_dir / "inputdataconfig.json").write_text(
            json.dumps(
                {
                    c["ChannelName"]: {"TrainingInputMode": "File"}
                    for c in request.get("InputDataConfig", [])
                }
            )
        )
        threads = max(1, self.cpus // (len(hosts) * job.cpu_share))
        hps = spec.hyperparameters
        env = {
            **os.environ,
            **(request.get("Environment") or {}),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(code_dir), os.environ.get("PYTHONPATH")])
            ),
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": str(threads),
            "TRAINING_JOB_NAME": job.name,
            "TRAINING_JOB_ARN": job.arn,
            "SM_HOSTS": json.dumps(hosts),
            "SM_CURRENT_HOST": host,
            "SM_NUM_GPUS": "0",
            "SM_NUM_CPUS": str(threads),
            "SM_MODEL_DIR": str(host_dir / "model"),
            "SM_OUTPUT_DIR": str(host_dir / "output"),
            "SM_OUTPUT_DATA_DIR": str(host_dir / "output" / "data"),
            "SM_INPUT_DIR": str(root / "input"),
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

    # -- S3 and logs ------------------------------------------------------------------

    def _ensure_log_group(self, region: str) -> None:
        logs = self.client("logs", region)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=LOG_GROUP)

    def _download_channels(self, job: TrainingJob, data_root: Path) -> dict[str, Path]:
        channels: dict[str, Path] = {}
        for channel in job.request.get("InputDataConfig", []):
            name = channel["ChannelName"]
            source = channel.get("DataSource", {}).get("S3DataSource")
            if not source:
                raise validation_error(f"channel {name}: only S3DataSource is supported locally")
            target = data_root / name
            count = self._download_prefix(job.region, source["S3Uri"], target)
            if count == 0:
                raise validation_error(f"channel {name}: no objects under {source['S3Uri']}")
            channels[name] = target
        return channels

    def _download_prefix(self, region: str, uri: str, target: Path) -> int:
        """Copy every object under ``uri`` into ``target`` (an exact key: that one file)."""
        bucket, prefix = parse_s3(uri)
        s3 = self.client("s3", region)
        target.mkdir(parents=True, exist_ok=True)
        count = 0
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key == prefix:
                        relative = Path(key).name
                    else:
                        relative = key[len(prefix) :].lstrip("/") if prefix else key
                        if prefix and not key[len(prefix) :].startswith("/"):
                            continue  # s3://b/data must not match s3://b/data2/...
                    if not relative or relative.endswith("/"):
                        continue
                    destination = target / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, key, str(destination))
                    count += 1
        except s3.exceptions.NoSuchBucket as exc:
            raise validation_error(f"bucket {bucket} does not exist") from exc
        return count

    def _download_tarball(self, region: str, uri: str, target: Path) -> None:
        bucket, key = parse_s3(uri)
        target.mkdir(parents=True, exist_ok=True)
        archive = target.parent / "sourcedir.tar.gz"
        try:
            self.client("s3", region).download_file(bucket, key, str(archive))
        except Exception as exc:
            raise validation_error(f"cannot fetch the source code {uri}: {exc}") from exc
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(target, filter="data")

    def _upload_tar(self, region: str, folder: Path, uri: str) -> None:
        bucket, key = parse_s3(uri)
        archive = folder.parent / (folder.name + ".tar.gz")
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                tar.add(path, arcname=path.name)
        self.client("s3", region).upload_file(str(archive), bucket, key)

    def _upload_folder(
        self, region: str, folder: Path, uri: str, uploaded: dict[Path, float] | None = None
    ) -> None:
        """Upload ``folder`` under ``uri``; with ``uploaded`` (path -> mtime), only changes."""
        if not folder.is_dir():
            return
        bucket, prefix = parse_s3(uri)
        s3 = self.client("s3", region)
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.endswith(".tmp"):
                mtime = path.stat().st_mtime
                if uploaded is not None:
                    if uploaded.get(path) == mtime:
                        continue
                    uploaded[path] = mtime
                key = "/".join(
                    filter(None, [prefix.rstrip("/"), path.relative_to(folder).as_posix()])
                )
                s3.upload_file(str(path), bucket, key)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
