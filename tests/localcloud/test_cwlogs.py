"""The CloudWatch Logs stream writer sends a line without waiting for the next one; a log group
is ensured by threads sharing one client."""

from __future__ import annotations

import sys
import threading
import uuid

import boto3

from ops.localcloud.cwlogs import MAX_BATCH, LogStreamWriter, ensure_group


class FakeLogs:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.put = threading.Event()

    def create_log_stream(self, **_: str) -> None:
        pass

    def put_log_events(self, logGroupName: str, logStreamName: str, logEvents: list) -> None:
        self.batches.append([event["message"] for event in logEvents])
        self.put.set()


def test_a_lone_line_is_sent_while_nothing_follows():
    logs = FakeLogs()
    writer = LogStreamWriter(logs, "group", "stream")
    writer.write("only line")
    assert logs.put.wait(timeout=30)  # no close, no second line: the timed flush sent it
    assert logs.batches == [["only line"]]
    writer.close()


def test_lines_are_batched_and_close_sends_the_rest():
    logs = FakeLogs()
    writer = LogStreamWriter(logs, "group", "stream", flush_s=600)
    for i in range(MAX_BATCH + 3):
        writer.write(f"line {i}" if i else "")
    writer.close()
    sent = [line for batch in logs.batches for line in batch]
    assert sent == [" "] + [f"line {i}" for i in range(1, MAX_BATCH + 3)]  # empty lines: " "
    assert len(logs.batches[0]) == MAX_BATCH


def test_threads_sharing_a_new_client_ensure_an_existing_group(cloud):
    """Training jobs started together ensure their log group on one shared client, whose
    exception classes botocore builds on first use without a lock: no thread may see the
    group's ResourceAlreadyExistsException escape. (Against the session's local cloud: moto's
    mock_aws would reset the backends it serves from.)"""
    keys = {
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "endpoint_url": cloud.url,
    }
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: first uses overlap
    try:
        for round in range(3):
            group = f"/test/cwlogs/shared-client-{uuid.uuid4().hex[:8]}-{round}"
            boto3.client("logs", "us-east-1", **keys).create_log_group(logGroupName=group)
            logs = boto3.Session().client("logs", "us-east-1", **keys)  # exceptions not built
            together = threading.Barrier(8)
            escaped: list[Exception] = []

            def ensure(logs=logs, group=group, together=together, escaped=escaped):
                together.wait()
                try:
                    ensure_group(logs, group)
                except Exception as exc:
                    escaped.append(exc)

            threads = [threading.Thread(target=ensure) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert escaped == []
    finally:
        sys.setswitchinterval(interval)
