"""SageMaker training jobs, run for real on this machine.

A job gets a work folder laid out like ``/opt/ml`` for each instance (``algo-1``, ``algo-2``,
...): data channels and the source code are fetched from (local) S3, the entry script runs as a
supervised child with the SageMaker training environment (see `launch`), and each instance's
output goes to CloudWatch Logs as ``<job>/algo-N-<epoch>`` in ``/aws/sagemaker/TrainingJobs``,
which is where the SageMaker SDKs stream logs from. Metric definitions are applied to algo-1's
output. On success, and after a stop, ``model/`` is packed to
``<S3OutputPath>/<job>/output/model.tar.gz``; checkpoints are synced to
``CheckpointConfig.S3Uri`` while the job runs and restored from there when it starts.

A job's work folder is ``$DOGOPS_HOME/jobs/<region>/<job>/``, emptied when the job starts: a
name used again (after a restart lost the old record) never packs the old job's files. Code in
the job reaches the local cloud as the job's role (`identity.aws_environment`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections import deque
from pathlib import Path

from botocore.exceptions import ClientError

from ops import s3 as ops_s3
from ops.errors import OpsError
from ops.localcloud import cwlogs, loopback
from ops.localcloud.identity import aws_environment
from ops.localcloud.sagemaker.launch import (
    Instance,
    environment,
    instance_command,
    launch_spec,
)
from ops.localcloud.sagemaker.records import TrainingJob
from ops.localcloud.service import Context
from ops.localcloud.supervisor import SupervisorClosed, Workers

log = logging.getLogger("dogops.localcloud")
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
FAILURE_TAIL_LINES = 12
# From SIGTERM to SIGKILL when a job is stopped (StopTrainingJob, MaxRuntimeInSeconds), as AWS:
# "SageMaker sends the algorithm the SIGTERM signal, which delays job termination for 120
# seconds" (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StopTrainingJob.html,
# and StoppingCondition's page). `TrainingRunner.stop_grace` holds it; the environment variable
# sets it for a whole local cloud (tests, impatient users).
STOP_GRACE_S = 120.0
STOP_GRACE_ENV = "DOGOPS_LOCALCLOUD_STOP_GRACE_S"
# The secondary statuses of a Stopped job, with their documented meaning (API_DescribeTrainingJob
# and API_SecondaryStatusTransition: Stopping -> Stopping; Stopped -> Stopped, MaxRuntimeExceeded).
STOPPED = ("Stopped", "The training job has stopped.")
MAX_RUNTIME_EXCEEDED = (
    "MaxRuntimeExceeded",
    "The job stopped because it exceeded the maximum allowed runtime.",
)
LOCAL_CLOUD_STOPPED = "The local cloud stopped while the training job was running."
CHECKPOINT_SYNC_S = 2.0


class InstanceOutput:
    """The sink of one instance's output lines: CloudWatch Logs, a tail for the failure
    reason, and (on algo-1) the metric definitions."""

    def __init__(self, logs, job: TrainingJob, host: str, parse: bool):
        self.job = job
        self.tail: deque[str] = deque(maxlen=FAILURE_TAIL_LINES)
        self.definitions = (
            [
                (d["Name"], re.compile(d["Regex"]))
                for d in job.request["AlgorithmSpecification"].get("MetricDefinitions", [])
            ]
            if parse
            else []
        )
        stream = f"{job.name}/{host}-{int(time.time())}"
        self.writer = cwlogs.LogStreamWriter(logs, LOG_GROUP, stream)

    def __call__(self, line: str) -> None:
        self.tail.append(line)
        self.writer.write(line)
        for name, regex in self.definitions:
            match = regex.search(line)
            if match:
                try:
                    self.job.record_metric(name, float(match.group(1)))
                except (IndexError, ValueError):
                    continue


class TrainingRunner:
    """Runs each training job on a thread of its own; the job's record says how it goes."""

    def __init__(self, context: Context, cpus: int | None = None):
        self.moto = context.moto
        self.supervisor = context.supervisor
        self.url = context.url
        self.work_root = context.home / "jobs"
        self.cpus = cpus or os.cpu_count() or 1
        self.workers = Workers()
        self.stop_grace = float(os.environ.get(STOP_GRACE_ENV, STOP_GRACE_S))

    def start(self, job: TrainingJob, on_done=None) -> None:
        self.workers.start(f"job-{job.name}", self._run, job, on_done)

    def stop(
        self, job: TrainingJob, outcome: tuple[str, str] = STOPPED, reason: str | None = None
    ) -> None:
        """SIGTERM every instance (SIGKILL after `stop_grace`); none starts after this. The job
        is `Stopping` until its instances are gone and what they saved is uploaded, then
        `Stopped` with ``outcome`` (secondary status, message) and ``reason`` as FailureReason
        (`LOCAL_CLOUD_STOPPED` when the local cloud stops; its shorter grace then applies)."""
        for child in job.request_stop(*outcome, reason=reason):
            child.terminate(self.stop_grace)

    def join(self, timeout: float) -> None:
        """Wait for the job threads to finish their bookkeeping (final uploads, statuses)."""
        self.workers.join(timeout)

    # -- the job's life ---------------------------------------------------------------

    def _run(self, job: TrainingJob, on_done) -> None:
        try:
            self._execute(job)
        except OpsError as exc:
            job.mark_failed(f"ClientError: {exc}")
        except Exception as exc:  # a bug or an environment problem: report it on the job
            log.exception("training job %s", job.name)
            job.mark_failed(f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            if on_done:
                on_done(job)

    def _execute(self, job: TrainingJob) -> None:
        request, region = job.request, job.region
        s3 = self.moto.client("s3", region)
        root = self.work_root / region / job.name
        if root.exists():
            shutil.rmtree(root)
        count = int(request["ResourceConfig"]["InstanceCount"])
        hosts = [f"algo-{i + 1}" for i in range(count)]
        job.advance("Starting", "Preparing the instances for training")
        aws = aws_environment(self.url, region, self._assume_role(job))
        logs = self.moto.client("logs", region)
        cwlogs.ensure_group(logs, LOG_GROUP)
        job.advance("Downloading", "Downloading input data")
        channels = self._download_channels(s3, job, root / "input" / "data")
        spec = launch_spec(request, channels)
        code_dir = root / "code"
        if spec.source_tarball:
            ops_s3.fetch_tarball(s3, spec.source_tarball, code_dir)
        elif spec.code_channel:
            code_dir = channels[spec.code_channel]
        checkpoint_uri = (request.get("CheckpointConfig") or {}).get("S3Uri")
        if not job.mark_training():
            job.mark_stopped()  # before any instance started: nothing to upload
            return

        outputs: list[InstanceOutput] = []
        master_port = loopback.free_port()
        threads = max(1, self.cpus // (len(hosts) * job.cpu_share))
        for index, host in enumerate(hosts):
            instance = Instance(host, root, hosts)
            if checkpoint_uri:
                ops_s3.download_prefix(s3, checkpoint_uri, instance.dir / "checkpoints")
            env = environment(job, spec, instance, channels, code_dir, threads, aws)
            output = InstanceOutput(logs, job, host, parse=index == 0)
            outputs.append(output)
            command = instance_command(spec, hosts, index, master_port)

            def spawn(command=command, env=env, output=output, host=host):
                return self.supervisor.spawn(
                    f"{job.name}/{host}", command, cwd=code_dir, env=env, sink=output
                )

            try:
                started = job.start_instance(spawn)
            except SupervisorClosed:
                job.request_stop(*STOPPED, reason=LOCAL_CLOUD_STOPPED)
                started = None
            if started is None:
                break  # stopping: the instances already started are signalled

        codes = self._wait(job, s3, checkpoint_uri, root / "algo-1" / "checkpoints")
        for output in outputs:
            output.writer.close()
        if checkpoint_uri:
            ops_s3.upload_folder(s3, root / "algo-1" / "checkpoints", checkpoint_uri)
        if job.stop_requested.is_set():
            # As on AWS, what the script saved in its grace period is the job's model.
            job.mark_stopped(self._upload(s3, job, root) if codes else None)
            return
        failed = [(host, code) for host, code in zip(hosts, codes, strict=True) if code != 0]
        if failed:
            host, code = failed[0]
            tail = "\n".join(outputs[hosts.index(host)].tail)
            reason = f"AlgorithmError: ExecuteUserScriptError: ExitCode {code} on {host}\n{tail}"
            job.mark_failed(reason[-1024:])
            return
        job.advance("Uploading", "Uploading generated training model")
        job.mark_completed(self._upload(s3, job, root))

    def _upload(self, s3, job: TrainingJob, root: Path) -> str:
        """algo-1's ``model/`` to ``model.tar.gz`` and ``output/data/`` to ``output.tar.gz``
        under ``<S3OutputPath>/<job>/output/``; returns the model's URI."""
        output_path = job.request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        artifact = f"{output_path}/{job.name}/output/model.tar.gz"
        ops_s3.put_tarball(s3, root / "algo-1" / "model", artifact)
        ops_s3.put_tarball(
            s3,
            root / "algo-1" / "output" / "data",
            f"{output_path}/{job.name}/output/output.tar.gz",
        )
        return artifact

    def _assume_role(self, job: TrainingJob) -> dict:
        """Credentials standing for the job's role, as a training container gets them."""
        role = job.request["RoleArn"]
        try:
            answer = self.moto.client("sts", job.region).assume_role(
                RoleArn=role, RoleSessionName="SageMaker"
            )
        except ClientError as exc:
            # AWS's FailureReason when it cannot: "ClientError: SageMaker was unable to assume
            # the role '<arn>'" (the runner adds the "ClientError: ").
            raise OpsError(f"SageMaker was unable to assume the role '{role}'") from exc
        return answer["Credentials"]

    def _wait(self, job: TrainingJob, s3, checkpoint_uri: str | None, checkpoints: Path):
        """Wait for every instance; sync checkpoints meanwhile; enforce stop and max runtime.
        Returns the exit codes (all reaped, all output read)."""
        max_runtime = (job.request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        deadline = time.monotonic() + max_runtime if max_runtime else None
        synced_at = 0.0
        uploaded: dict[Path, float] = {}
        while True:
            with job.lock:
                children = list(job.children)
            running = [child for child in children if child.running()]
            if not running:
                for child in children:
                    child.wait()
                return [child.returncode for child in children]
            if deadline and time.monotonic() > deadline and not job.stop_requested.is_set():
                self.stop(job, MAX_RUNTIME_EXCEEDED)
            elif any(child.returncode not in (None, 0) for child in children):
                # One instance failed: the others would wait on it forever (rendezvous).
                for child in running:
                    child.terminate(self.stop_grace)
            if checkpoint_uri and time.monotonic() - synced_at > CHECKPOINT_SYNC_S:
                ops_s3.upload_folder(s3, checkpoints, checkpoint_uri, uploaded)
                synced_at = time.monotonic()
            running[0].wait(0.2)

    def _download_channels(self, s3, job: TrainingJob, data_root: Path) -> dict[str, Path]:
        channels: dict[str, Path] = {}
        for channel in job.request.get("InputDataConfig", []):
            name = channel["ChannelName"]
            source = channel.get("DataSource", {}).get("S3DataSource")
            if not source:
                raise OpsError(f"channel {name}: only S3DataSource is supported locally")
            target = data_root / name
            if ops_s3.download_prefix(s3, source["S3Uri"], target) == 0:
                raise OpsError(f"channel {name}: no objects under {source['S3Uri']}")
            channels[name] = target
        return channels
