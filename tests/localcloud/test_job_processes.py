"""Training jobs' processes as a user of the SageMaker API sees them: logs in near real time,
and an instance that will not stop is killed rather than waited for."""

from __future__ import annotations

import time

from ops.localcloud.sagemaker import SageMakerService
from tests.localcloud.conftest import script_job, wait_for, wait_training

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def test_a_line_reaches_get_log_events_while_the_job_says_nothing_more(staged):
    sm, logs, s3 = staged.client("sagemaker"), staged.client("logs"), staged.client("s3")
    script = """
        import time
        print(f"printed at {time.time():.3f}", flush=True)
        time.sleep(600)
    """
    sm.create_training_job(**script_job(s3, "quiet-1", script))
    try:

        def printed_line():
            streams = logs.describe_log_streams(
                logGroupName=LOG_GROUP, logStreamNamePrefix="quiet-1/"
            )["logStreams"]
            for stream in streams:
                events = logs.get_log_events(
                    logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"]
                )["events"]
                for event in events:
                    if event["message"].startswith("printed at"):
                        return event["message"], time.time()
            return None

        line, seen = wait_for(printed_line, bool, timeout=60, poll=0.1)
        printed = float(line.split()[-1])
        assert seen - printed < 2.0, f"the line showed {seen - printed:.1f} s after it was printed"
    finally:
        sm.stop_training_job(TrainingJobName="quiet-1")
    assert wait_training(sm, "quiet-1", timeout=60)["TrainingJobStatus"] == "Stopped"


def test_a_failed_instance_ends_a_sibling_that_ignores_sigterm(staged, cloud, monkeypatch):
    monkeypatch.setattr(cloud.service(SageMakerService).runner, "stop_grace", 1.0)
    sm, s3 = staged.client("sagemaker"), staged.client("s3")
    # algo-2 ignores SIGTERM, then algo-1 fails: algo-2 must be killed once its grace is over.
    script = """
        import os, pathlib, signal, sys, time
        flag = pathlib.Path(os.environ["SM_INPUT_DIR"]).parent / "algo-2-ignores-sigterm"
        if os.environ["SM_CURRENT_HOST"] == "algo-2":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            flag.touch()
            time.sleep(600)
        while not flag.exists():
            time.sleep(0.05)
        sys.exit(3)
    """
    sm.create_training_job(**script_job(s3, "stubborn-1", script, instance_count=2))
    job = wait_training(sm, "stubborn-1", timeout=120)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: ExecuteUserScriptError: ExitCode 3")
    assert "on algo-1" in job["FailureReason"]
