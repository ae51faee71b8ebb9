"""The CloudWatch Logs stream writer sends a line without waiting for the next one."""

from __future__ import annotations

import threading

from ops.localcloud.cwlogs import MAX_BATCH, LogStreamWriter


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
