"""The SageMaker Python SDK v3, unchanged, against the local cloud with nothing but what
`ops local env` prints: ModelTrainer.train() and HyperparameterTuner.tune() run a plain
`parse_args()` script (and our ml/ code) and report what AWS would, and no connection leaves
the loopback interface."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.localcloud import control
from ops.metrics import METRIC_DEFINITIONS
from tests.localcloud.conftest import BUCKET

REPO = Path(__file__).resolve().parents[2]
# What a user's entry script looks like: argparse with parse_args(), so any argument the
# platform adds that the script does not declare fails it (exit code 2), as on AWS.
SCRIPT = """\
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--learning-rate", type=float, required=True)
args = parser.parse_args()
print(f"loss: {(args.learning_rate - 0.02) ** 2:.8f}")
"""
LOSS = [{"Name": "loss", "Regex": r"loss: ([0-9.]+)"}]


@pytest.fixture
def outside_calls(monkeypatch) -> list:
    """Refuse, and record, every connection or name lookup that would leave the loopback
    interface from this process (its threads too: the SDK sends telemetry from one)."""
    attempts: list = []

    def leaves(host) -> bool:
        if isinstance(host, bytes):
            host = host.decode()
        if host is None or host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return True  # a name: resolving it asks a DNS server

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refused(sock, address) -> bool:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and leaves(address[0]):
            attempts.append(address[0])
            return True
        return False

    def connect(sock, address):
        if refused(sock, address):
            raise ConnectionRefusedError(f"test guard: no connection to {address[:2]}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        return 111 if refused(sock, address) else real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if leaves(host):
            attempts.append(host)
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: no lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def settled(attempts: list) -> list:
    """``attempts`` once the SDK's fire-and-forget telemetry threads have finished."""
    for thread in threading.enumerate():
        if thread.name == "sagemaker-telemetry":
            thread.join(timeout=10)
    return attempts


@pytest.fixture
def shell(cloud, tmp_path, monkeypatch) -> Iterator[dict[str, str]]:
    """This process's environment as after `eval "$(ops local env)"` in a shell with no AWS or
    SageMaker settings: the session's local cloud is the one `ops` finds in $DOGOPS_HOME."""
    monkeypatch.setenv("DOGOPS_HOME", str(tmp_path / "home"))
    control.register(cloud.url, os.getpid())
    printed = CliRunner().invoke(app, ["local", "env", "--json"])
    assert printed.exit_code == 0, printed.output
    environment = json.loads(printed.stdout)
    for name in list(os.environ):
        if name.startswith(("AWS_", "SAGEMAKER_", "BOTO_")):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    from sagemaker.core.utils.utils import SageMakerClient

    SageMakerClient.reset()  # no client the SDK cached under another test's environment
    yield environment
    SageMakerClient.reset()


def source_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "entry.py").write_text(SCRIPT)
    return root


def plain_trainer(tmp_path: Path, base_job_name: str):
    """A ModelTrainer as a user writes it against AWS: no session, no role, no bucket."""
    from sagemaker.core.training.configs import Compute, SourceCode
    from sagemaker.train import ModelTrainer

    return ModelTrainer(
        training_image="local/pytorch-training",
        source_code=SourceCode(
            source_dir=str(source_folder(tmp_path / "src")), entry_script="entry.py"
        ),
        compute=Compute(instance_type="ml.m5.xlarge", instance_count=1),
        hyperparameters={"learning-rate": 0.05},
        base_job_name=base_job_name,
    )


def test_the_guard_refuses_and_records_outside_calls(outside_calls, cloud):
    import requests

    with pytest.raises(requests.ConnectionError):
        requests.get("https://sm-pysdk-t-us-east-1.s3.us-east-1.amazonaws.com/telemetry")
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("192.0.2.1", 443))
    with socket.create_connection(("127.0.0.1", int(urlsplit(cloud.url).port))):
        pass  # the local cloud is reachable
    assert outside_calls == ["sm-pysdk-t-us-east-1.s3.us-east-1.amazonaws.com", "192.0.2.1"]


def test_model_trainer_with_only_the_local_env(shell, outside_calls, tmp_path, staged):
    trainer = plain_trainer(tmp_path, "sdk-plain")
    trainer.train(wait=False)
    job = trainer._latest_training_job
    job.wait(poll=1)  # the SDK's own waiter; train(wait=True) polls every 5 s
    assert job.training_job_status == "Completed", job.failure_reason
    assert job.role_arn == control.LOCAL_ROLE_ARN
    artifact = job.model_artifacts.s3_model_artifacts
    assert artifact.startswith(f"s3://{control.SDK_DEFAULT_BUCKET}/")
    events = staged.client("logs").filter_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=job.training_job_name
    )["events"]
    assert any("loss: 0.00090000" in e["message"] for e in events)
    assert settled(outside_calls) == []


def test_hyperparameter_tuner_with_only_the_local_env(shell, outside_calls, tmp_path):
    from sagemaker.core.parameter import ContinuousParameter
    from sagemaker.train.tuner import HyperparameterTuner

    tuner = HyperparameterTuner(
        model_trainer=plain_trainer(tmp_path, "sdk-tune"),
        objective_metric_name="loss",
        hyperparameter_ranges={"learning-rate": ContinuousParameter(0.001, 0.1)},
        metric_definitions=LOSS,
        strategy="Random",
        objective_type="Minimize",
        max_jobs=3,
        max_parallel_jobs=2,
        # The SDK names a tuning job <base>-<yymmdd-HHMM>, by default after the image, so two
        # tuners of one image started in the same minute collide (ResourceInUse, on AWS too).
        base_tuning_job_name="sdk-plain",
    )
    tuner.tune(wait=False)
    tuner.latest_tuning_job.wait(poll=1)
    described = tuner.describe()
    assert described.hyper_parameter_tuning_job_status == "Completed"
    counters = described.training_job_status_counters
    assert (counters.completed, counters.non_retryable_error) == (3, 0)
    best = described.best_training_job
    assert tuner.best_training_job() == best.training_job_name
    trials = boto3.client("sagemaker").list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=described.hyper_parameter_tuning_job_name
    )["TrainingJobSummaries"]
    assert len(trials) == 3
    lowest = min(t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials)
    assert best.final_hyper_parameter_tuning_job_objective_metric.value == lowest
    assert settled(outside_calls) == []


# ml/train.py through the SDK: real training, slower.


@pytest.fixture
def sdk(shell, staged, tmp_path):
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig, SourceCode
    from sagemaker.train import ModelTrainer

    source = tmp_path / "src"
    shutil.copytree(REPO / "ml", source / "ml", ignore=shutil.ignore_patterns("__pycache__"))
    trainer = ModelTrainer(
        training_image="local/pytorch-training",
        source_code=SourceCode(source_dir=str(source), entry_script="ml/train.py"),
        compute=Compute(instance_type="ml.m5.xlarge", instance_count=1),
        hyperparameters={
            "arch": "resnet18",
            "weights": "none",
            "image-size": 32,
            "batch-size": 8,
            "epochs": 1,
        },
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{BUCKET}/sdk-models"),
        base_job_name="sdk-train",
    )
    inputs = [InputData(channel_name="training", data_source=staged.data_uri)]
    return trainer, inputs


@pytest.mark.slow
def test_model_trainer_train(sdk, staged, caplog):
    trainer, inputs = sdk
    caplog.set_level(logging.INFO, logger="sagemaker.core.resources")
    trainer.train(input_data_config=inputs, wait=True, logs=True)
    job = trainer._latest_training_job
    assert job.training_job_status == "Completed", job.failure_reason
    # The SDK streamed the job's output from CloudWatch Logs, as it does on AWS.
    streamed = "\n".join(r.getMessage() for r in caplog.records)
    assert "algo-1" in streamed and "Test Loss:" in streamed
    artifact = job.model_artifacts.s3_model_artifacts
    assert artifact.startswith(f"s3://{BUCKET}/sdk-models/sdk-train-")
    assert artifact.endswith("/output/model.tar.gz")
    key = artifact.removeprefix(f"s3://{BUCKET}/")
    assert staged.client("s3").head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0
    # The SDK's channels were understood: it ran the entry script with its hyperparameters.
    described = staged.client("sagemaker").describe_training_job(
        TrainingJobName=job.training_job_name
    )
    channels = {c["ChannelName"] for c in described["InputDataConfig"]}
    assert {"training", "code", "sm_drivers"} <= channels


@pytest.mark.slow
def test_hyperparameter_tuner_tune(sdk, staged):
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter
    from sagemaker.train.tuner import HyperparameterTuner

    trainer, inputs = sdk
    tuner = HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name="Test Loss",
        hyperparameter_ranges={
            "learning-rate": ContinuousParameter(0.001, 0.1, scaling_type="Logarithmic"),
            "batch-size": CategoricalParameter([4, 8]),
        },
        metric_definitions=METRIC_DEFINITIONS,
        strategy="Bayesian",
        objective_type="Minimize",
        max_jobs=2,
        max_parallel_jobs=2,
        random_seed=11,
        base_tuning_job_name="sdk-ml",
    )
    tuner.tune(inputs=inputs, wait=False)
    tuner.wait()
    described = tuner.describe()
    assert described.hyper_parameter_tuning_job_status == "Completed"
    best = described.best_training_job
    assert tuner.best_training_job() == best.training_job_name
    sm = staged.client("sagemaker")
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=described.hyper_parameter_tuning_job_name
    )["TrainingJobSummaries"]
    assert len(trials) == 2
    lowest = min(t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials)
    assert best.final_hyper_parameter_tuning_job_objective_metric.value == lowest


@pytest.mark.slow
def test_model_trainer_torchrun_on_two_instances(sdk, staged):
    from sagemaker.core.training.configs import Compute
    from sagemaker.train.distributed import Torchrun

    trainer, inputs = sdk
    trainer.compute = Compute(instance_type="ml.m5.xlarge", instance_count=2)
    trainer.distributed = Torchrun()
    trainer.base_job_name = "sdk-ddp"
    trainer.train(input_data_config=inputs, wait=True, logs=False)
    job = trainer._latest_training_job
    assert job.training_job_status == "Completed", job.failure_reason
    logs = staged.client("logs")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=job.training_job_name + "/"
    )["logStreams"]
    assert len(streams) == 2
    first = next(s for s in streams if "/algo-1-" in s["logStreamName"])
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=first["logStreamName"],
        startFromHead=True,
    )["events"]
    assert any("world_size=2" in e["message"] for e in events)  # sourcecode + distributed.json
