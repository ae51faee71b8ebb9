"""The SageMaker Python SDK v3, unchanged, against the local cloud: ModelTrainer.train() and
HyperparameterTuner.tune() run our ml/ code and report what AWS would."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import boto3
import pytest

from ops.metrics import METRIC_DEFINITIONS
from tests.localcloud.conftest import BUCKET, ROLE

REPO = Path(__file__).resolve().parents[2]
SDK_CONFIG = Path(__file__).with_name("sagemaker-sdk.yaml")


@pytest.fixture
def sdk(aws_env, staged, monkeypatch, tmp_path):
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(SDK_CONFIG))
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig, SourceCode
    from sagemaker.train import ModelTrainer

    source = tmp_path / "src"
    shutil.copytree(REPO / "ml", source / "ml", ignore=shutil.ignore_patterns("__pycache__"))
    session = Session(boto_session=boto3.Session(region_name="us-east-1"), default_bucket=BUCKET)
    trainer = ModelTrainer(
        sagemaker_session=session,
        role=ROLE,
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
