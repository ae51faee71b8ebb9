"""Lines of a process's output -> one CloudWatch Logs stream, in near real time.

Lines are batched (one PutLogEvents per batch) and a batch goes out at the latest `FLUSH_S`
after its first line arrived, whether or not more lines follow: a job that prints one line and
then goes quiet is still seen at once by a client polling GetLogEvents.
"""

from __future__ import annotations

import logging
import threading
import time

from botocore.exceptions import ClientError

log = logging.getLogger("dogops.localcloud")

FLUSH_S = 0.5
MAX_BATCH = 200


def ensure_group(logs, group: str) -> None:
    """Create ``group`` unless it exists. Safe on a client shared by threads: the error is told
    by its code, not by class. botocore builds a client's exception classes on their first use
    without a lock, so threads that get there together each build a set, the client keeps the
    last, and ``logs.exceptions.ResourceAlreadyExistsException`` read by one thread need not be
    the class its call raises (training jobs started together then failed with the group's
    ResourceAlreadyExistsException)."""
    try:
        logs.create_log_group(logGroupName=group)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise


class LogStreamWriter:
    """Creates the stream, then `write` lines; `close` sends what is left."""

    def __init__(self, logs, group: str, stream: str, flush_s: float = FLUSH_S):
        self.logs = logs
        self.group = group
        self.stream = stream
        self.flush_s = flush_s
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()  # a batch has started (or is full)
        self._closing = threading.Event()
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        self._flusher = threading.Thread(target=self._run, daemon=True, name=f"logs-{stream}")
        self._flusher.start()

    def write(self, line: str) -> None:
        event = {"timestamp": int(time.time() * 1000), "message": line or " "}
        with self._lock:
            self._pending.append(event)
            if len(self._pending) == 1 or len(self._pending) >= MAX_BATCH:
                self._wake.set()

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._flusher.join()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                full = len(self._pending) >= MAX_BATCH
            if not full:
                # The lines that follow the first one within the interval join its batch.
                self._closing.wait(self.flush_s)
            with self._lock:
                batch, self._pending = self._pending, []
                self._wake.clear()
            closing = self._closing.is_set()  # read after the clear, or a close could be missed
            for start in range(0, len(batch), MAX_BATCH):
                self._put(batch[start : start + MAX_BATCH])
            if closing:
                return

    def _put(self, events: list[dict]) -> None:
        try:
            self.logs.put_log_events(
                logGroupName=self.group, logStreamName=self.stream, logEvents=events
            )
        except Exception:  # lost lines must not stop the job; say so in our own log
            log.exception("could not write %d lines to %s", len(events), self.stream)
