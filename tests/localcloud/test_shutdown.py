"""Stopping the local cloud in the middle of a tuning job: the search starts no new trial, the
running trial gets SIGTERM and its grace period (its last checkpoint reaches S3, and the saved
S3), and no process of the local cloud's tree survives. A real `ops local up --detach`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3

from ops.localcloud.control import process_identity
from tests.localcloud.conftest import BUCKET, run_ops, script_tuning_request, wait_for

TRIAL = """
    import os, pathlib, signal, subprocess, sys, time
    checkpoints = pathlib.Path(os.environ["SM_CHECKPOINT_DIR"])

    def on_sigterm(signum, frame):
        (checkpoints / "checkpoint.txt").write_text("written in the grace period")
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    # A worker that ignores SIGTERM, as a stuck data loader worker might.
    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    subprocess.Popen([sys.executable, "-c", ignore])
    print("trial running", flush=True)
    time.sleep(600)
"""


def processes() -> dict[int, dict]:
    """Every process on the machine: pid -> ppid, session and start time (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            found[int(entry.name)] = {
                "ppid": int(fields[1]),
                "session": int(fields[3]),
                "start_time": int(fields[19]),
            }
    return found


def descendants(root: int) -> dict[int, dict]:
    everyone = processes()
    tree, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, info in everyone.items():
            if info["ppid"] == parent and pid not in tree:
                tree[pid] = info
                frontier.append(pid)
    return tree


def client(url: str, service: str):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_stopping_mid_trial_leaves_no_process_and_keeps_the_checkpoint(tmp_path):
    env = {**os.environ, "DOGOPS_HOME": str(tmp_path)}
    up = run_ops("local", "up", "--detach", "--json", env=env)
    assert up.returncode == 0, up.stderr
    cloud = json.loads(up.stdout)
    try:
        s3, sm = client(cloud["url"], "s3"), client(cloud["url"], "sagemaker")
        logs = client(cloud["url"], "logs")
        s3.create_bucket(Bucket=BUCKET)
        request = script_tuning_request(
            s3,
            "hpo-down",
            TRIAL,
            {"CategoricalParameterRanges": [{"Name": "x", "Values": ["1", "2"]}]},
            jobs=3,
            parallel=1,
            CheckpointConfig={"S3Uri": f"s3://{BUCKET}/checkpoints"},
        )
        sm.create_hyper_parameter_tuning_job(**request)

        def trial_running():
            streams = logs.describe_log_streams(
                logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="hpo-down-"
            )["logStreams"]
            return any(
                event["message"] == "trial running"
                for stream in streams
                for event in logs.get_log_events(
                    logGroupName="/aws/sagemaker/TrainingJobs",
                    logStreamName=stream["logStreamName"],
                )["events"]
            )

        wait_for(trial_running, bool, timeout=60, poll=0.2)
        tree = wait_for(lambda: descendants(cloud["pid"]), lambda t: len(t) >= 2, timeout=30)
        (trial,) = [p.name for p in (tmp_path / "jobs" / "us-east-1").iterdir()]
    finally:
        down = run_ops("local", "down", "--json", env=env)
    assert json.loads(down.stdout)["stopped"] is True, down.stderr

    assert process_identity(cloud["pid"]) is None
    for pid, info in tree.items():
        identity = process_identity(pid)
        assert identity is None or identity["start_time"] != info["start_time"], f"{pid} lives"
    sessions = {info["session"] for info in tree.values()}
    assert [pid for pid, info in processes().items() if info["session"] in sessions] == []
    # The search started no trial after the first one was stopped.
    assert [p.name for p in (tmp_path / "jobs" / "us-east-1").iterdir()] == [trial]
    # The checkpoint written in the grace period was uploaded before S3 was saved.
    manifest = json.loads((tmp_path / "s3" / "manifest.json").read_text())
    assert f"checkpoints/{trial}/checkpoint.txt" in manifest["buckets"][BUCKET]["objects"]
