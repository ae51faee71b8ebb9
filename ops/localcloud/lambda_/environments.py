"""Execution environments: one process each, running the function's zip with the real runtime
interface client (``python -m awslambdaric <handler>``) against its own Runtime API
(`runtime_api`), one invocation at a time.

An environment's life (LAM:lambda-runtime-environment): Starting (the process starts and the
runtime imports the handler: the init phase, timed from spawn to its first
``invocation/next``) -> Idle <-> Busy -> Stopped. An init error (``/runtime/init/error``) or a
process that exits before asking for work ends it Stopped with the error kept, which the
invocation waiting for it gets. A timed-out invocation, a process exit during one, or memory
over the function's MemorySize end it too (AWS resets the environment in each case).

Logs go to CloudWatch Logs, group ``/aws/lambda/<function>``, one stream per environment
(``YYYY/MM/DD/[<version>]<32 hex>``), with AWS's ``START``/``END``/``REPORT`` lines around each
invocation's own output (AWS-SEMANTICS.md C6). The invocation's lines are all in before its
REPORT: the environment prints, then answers the Runtime API, and `Child.sync_output` waits for
what was printed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ops.localcloud.cwlogs import LogStreamWriter, ensure_group
from ops.localcloud.lambda_.functions import FunctionSpec
from ops.localcloud.lambda_.runtime_api import RuntimeApi

log = logging.getLogger("dogops.localcloud")
TAIL_BYTES = 4096  # LogType Tail: the last 4 KB of the invocation's log
ON_DEMAND_INIT_S = 10.0  # LAM:lambda-runtime-environment: the init phase's limit
PROVISIONED_INIT_S = 130.0  # max(130 s, timeout) for provisioned concurrency
STOP_GRACE_S = 2.0


class Signal:
    """A value set once, awaited from threads (`wait`) or from the event loop (`wait_async`)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self.value: object = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, value: object = True) -> bool:
        """Set ``value`` unless already set; True if this call set it."""
        with self._lock:
            if self._event.is_set():
                return False
            self.value = value
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future, value)
        return True

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    async def wait_async(self, timeout: float | None = None) -> bool:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._event.is_set():
                return True
            future = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        return True


def _resolve(future: asyncio.Future, value: object) -> None:
    if not future.done():
        future.set_result(value)


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    invoked_arn: str
    client_context: str | None
    version: str
    timeout_s: int
    trace_id: str = field(default_factory=lambda: _trace_id())
    deadline_ms: int = 0
    done: Signal = field(default_factory=Signal)  # value: the Outcome


@dataclass
class Outcome:
    payload: bytes
    error: str | None  # None, or the X-Amz-Function-Error value ("Unhandled")
    duration_ms: float
    log: str  # the invocation's lines, START to REPORT
    init_ms: float | None = None  # on the environment's first invocation


class Environment:
    """One execution environment of one version of a function."""

    def __init__(self, owner, spec: FunctionSpec, kind: str, config=None):
        self.owner = owner  # `assignment.Environments`
        self.spec = spec
        self.kind = kind  # concurrency.PROVISIONED or ON_DEMAND
        self.config = config  # the ProvisionedConfig it serves, if provisioned
        self.id = uuid.uuid4().hex
        # Starting -> Busy (made for an invocation, or one of a provisioned set until the whole
        # set is up) <-> Idle -> Stopped; changed only through the methods below.
        self.state = "Starting"
        self.ready = Signal()  # True: waiting for work; False: init failed (see init_error)
        self.init_error: bytes | None = None
        self.init_ms: float | None = None
        self.last_used = time.monotonic()
        self.retire = False  # stop when next idle (its config was replaced or deleted)
        self._reported_init = False
        self._lock = threading.Lock()
        self._queue: queue.Queue[Invocation] = queue.Queue()
        self._current: Invocation | None = None
        self._started_at = 0.0
        self._lines: list[str] = []
        self._stopping = threading.Event()
        self._exit_reason: str | None = None
        self._out_of_memory = False
        self._spawned_at = 0.0
        self.child = None
        self.api: RuntimeApi | None = None
        self._writer: LogStreamWriter | None = None
        self.stream = (
            f"{datetime.now(UTC):%Y/%m/%d}/[{spec.version}]{self.id}"  # LAM:services-cloudwatchlogs
        )

    @property
    def group(self) -> str:
        return f"/aws/lambda/{self.spec.name}"

    # -- life ----------------------------------------------------------------------------------

    def start(self, task_root: Path, environment: dict[str, str]) -> None:
        """Spawn the process (returns at once; `ready` says when init is over)."""
        logs = self.owner.logs(self.spec.region)
        ensure_group(logs, self.group)
        self._writer = LogStreamWriter(logs, self.group, self.stream)
        self.api = RuntimeApi(self, self.id[:8])
        env = {
            **environment,
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": self.kind,
        }
        self._spawned_at = time.monotonic()
        try:
            self.child = self.owner.supervisor.spawn(
                f"lambda-{self.spec.name}-{self.id[:8]}",
                [sys.executable, "-m", "awslambdaric", self.spec.handler],
                cwd=task_root,
                env=env,
                sink=self._line,
            )
        except Exception:
            self.api.close()
            self._writer.close()
            raise
        threading.Thread(target=self._watch, daemon=True, name=f"env-{self.id[:8]}").start()

    def init_limit(self) -> float:
        if self.kind == "provisioned-concurrency":
            return max(PROVISIONED_INIT_S, float(self.spec.timeout_s))
        return max(ON_DEMAND_INIT_S, float(self.spec.timeout_s))

    def stop(self) -> None:
        """End the environment (its process gets SIGTERM, then SIGKILL)."""
        self._stopping.set()
        with self._lock:
            self.state = "Stopped"
        if self.child is not None:
            self.child.terminate(STOP_GRACE_S)
        self.ready.set(False)

    def alive(self) -> bool:
        return self.state in ("Idle", "Busy", "Starting") and not self._stopping.is_set()

    def claim(self) -> bool:
        """Idle -> Busy, for one invocation; False if it is not idle (or going away)."""
        with self._lock:
            if self.state != "Idle" or self._stopping.is_set():
                return False
            self.state = "Busy"
            return True

    def set_idle(self) -> bool:
        """Busy -> Idle once its invocation is over (or its provisioned set is up); False if
        it is going away."""
        with self._lock:
            if self.state != "Busy" or self._stopping.is_set():
                return False
            self.state = "Idle"
            self.last_used = time.monotonic()
            return True

    def _watch(self) -> None:
        """Enforce MemorySize while busy; on exit, end what was running and say why."""
        limit_kb = self.spec.memory_mb * 1024
        while self.child.wait(0.1) is None:
            if self._current is not None and _rss_kb(self.child.pid) > limit_kb:
                self._exit_reason = "signal: killed"
                self._out_of_memory = True
                self.child.kill()
        code = self.child.returncode
        reason = self._exit_reason or (
            f"signal: {_signal_name(-code)}"
            if code is not None and code < 0
            else f"exit status {code}"
        )
        error_type = "Runtime.OutOfMemory" if self._out_of_memory else "Runtime.ExitError"
        with self._lock:
            current = self._current
            self.state = "Stopped"
        if current is not None:  # also when stopped meanwhile: the caller gets an answer
            message = f"RequestId: {current.request_id} Error: Runtime exited with error: {reason}"
            self._finish(current.request_id, _error_document(error_type, message), "Unhandled")
        while True:  # handed over but never taken: the process ended first
            try:
                waiting = self._queue.get_nowait()
            except queue.Empty:
                break
            message = f"RequestId: {waiting.request_id} Error: Runtime exited with error: {reason}"
            waiting.done.set(
                Outcome(_error_document("Runtime.ExitError", message), "Unhandled", 0.0, "", None)
            )
        if not self.ready.is_set() and self.init_error is None:
            self.init_error = _error_document(
                "Runtime.ExitError",
                f"RequestId: - Error: Runtime exited with error: {reason}",
            )
        self.ready.set(False)
        if self.api is not None:
            self.api.close()
        if self._writer is not None:
            self._writer.close()
        self.owner.discard(self)

    # -- what the owner asks ---------------------------------------------------------------------

    def deliver(self, invocation: Invocation) -> None:
        """Hand ``invocation`` to the runtime (the environment is Busy: the owner assigned it)."""
        self._queue.put(invocation)

    def time_out(self, invocation: Invocation) -> None:
        """The function's timeout passed: end the invocation as AWS does, and the environment."""
        seconds = f"{invocation.timeout_s:.2f}"
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        self._line(f"{stamp} {invocation.request_id} Task timed out after {seconds} seconds")
        self._exit_reason = "timeout"
        payload = _error_document(
            "Sandbox.Timedout",
            f"RequestId: {invocation.request_id} Error: Task timed out after {seconds} seconds",
        )
        if not self._finish(invocation.request_id, payload, "Unhandled", sync=False):
            # The runtime never took it (slow to ask for work, or gone): it timed out all
            # the same, from the caller's side.
            invocation.done.set(
                Outcome(payload, "Unhandled", invocation.timeout_s * 1000.0, "", None)
            )
        self.stop()

    # -- the runtime's side (RuntimeHost) ---------------------------------------------------------

    def next_invocation(self) -> Invocation | None:
        with self._lock:
            if self.state == "Starting":  # init is over; it was made for work: Busy
                self.init_ms = (time.monotonic() - self._spawned_at) * 1000
                self.state = "Busy"
                first = True
            else:
                first = False
        if first:
            self.ready.set(True)
        while not self._stopping.is_set():
            try:
                invocation = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            invocation.deadline_ms = int(time.time() * 1000) + invocation.timeout_s * 1000
            with self._lock:
                self._current = invocation
                self._lines = []
                self._started_at = time.perf_counter()
            self._line(f"START RequestId: {invocation.request_id} Version: {invocation.version}")
            return invocation
        return None

    def on_response(self, request_id: str, body: bytes) -> bool:
        return self._finish(request_id, body, None)

    def on_error(self, request_id: str, body: bytes, error_type: str) -> bool:
        # Whatever the runtime calls it, callers see "Unhandled" (AWS-SEMANTICS.md C4).
        return self._finish(request_id, body, "Unhandled")

    def on_too_large(self, request_id: str, size: int) -> bool:
        message = "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
        return self._finish(
            request_id, _error_document("Function.ResponseSizeTooLarge", message), "Unhandled"
        )

    def on_init_error(self, body: bytes, error_type: str) -> None:
        self.init_error = body
        self._exit_reason = "init error"
        self.ready.set(False)

    # -- inside -------------------------------------------------------------------------------

    def _line(self, line: str) -> None:
        with self._lock:
            if self._current is not None:
                self._lines.append(line)
        if self._writer is not None:
            self._writer.write(line)

    def _finish(self, request_id: str, payload: bytes, error: str | None, sync=True) -> bool:
        with self._lock:
            current = self._current
            if current is None or current.request_id != request_id:
                return False
            duration_ms = (time.perf_counter() - self._started_at) * 1000
        if sync and self.child is not None:
            self.child.sync_output()  # the handler's lines are in before END and REPORT
        with self._lock:
            if self._current is not current:
                return False  # finished meanwhile (a timeout racing the answer)
            self._current = None
            lines = self._lines
            self._lines = []
            init_ms = None if self._reported_init else self.init_ms
            self._reported_init = True
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {self.spec.memory_mb} MB"
            f"\tMax Memory Used: {_peak_mb(self.child.pid) if self.child else 0} MB"
        )
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        tail = [f"END RequestId: {request_id}", report]
        for line in tail:
            if self._writer is not None:
                self._writer.write(line)
        text = "\n".join([*lines, *tail]) + "\n"
        current.done.set(Outcome(payload, error, duration_ms, text, init_ms))
        return True


def _error_document(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return {}


def _rss_kb(pid: int) -> int:
    value = _status(pid).get("VmRSS", "0 kB").split()
    return int(value[0]) if value else 0


def _peak_mb(pid: int) -> int:
    value = _status(pid).get("VmHWM", "0 kB").split()
    return math.ceil(int(value[0]) / 1024) if value else 0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG").lower().replace("kill", "killed")
    except ValueError:
        return str(number)
