"""Training jobs' processes as a user of the SageMaker API sees them: logs in near real time."""

from __future__ import annotations

import time

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
