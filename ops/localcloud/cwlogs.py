"""Lines of a process's output -> one CloudWatch Logs stream.

Lines are batched (one PutLogEvents per batch): a batch goes out when it is full or when a line
arrives more than `FLUSH_S` after the last batch went out, and at `close`.
"""

from __future__ import annotations

import contextlib
import time

FLUSH_S = 0.5
MAX_BATCH = 200


def ensure_group(logs, group: str) -> None:
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)


class LogStreamWriter:
    """Creates the stream, then `write` lines; `close` sends what is left."""

    def __init__(self, logs, group: str, stream: str):
        self.logs = logs
        self.group = group
        self.stream = stream
        self._pending: list[dict] = []
        self._flushed_at = time.monotonic()
        logs.create_log_stream(logGroupName=group, logStreamName=stream)

    def write(self, line: str) -> None:
        self._pending.append({"timestamp": int(time.time() * 1000), "message": line or " "})
        if len(self._pending) >= MAX_BATCH or time.monotonic() - self._flushed_at > FLUSH_S:
            self._flush()

    def close(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.logs.put_log_events(
                logGroupName=self.group, logStreamName=self.stream, logEvents=self._pending
            )
        self._pending, self._flushed_at = [], time.monotonic()
