"""Every child process of the local cloud, started, watched and stopped in one place.

A child runs in its own session, so its process group holds it and everything it starts
(torchrun workers, DataLoader workers): signals go to the whole group. Its output (stdout and
stderr together) is pumped line by line to a sink. When the leader exits, whatever is left of
its group is killed, as a container's processes end with its entry point. Stopping is SIGTERM,
then SIGKILL once the grace period has passed; every child gets its own grace, counted from
its own SIGTERM, so a child started late is not killed early. A second stop may bring the
SIGKILL forward, never back: the local cloud's shutdown (`Supervisor.stop_all`, `GRACE_S`) does
not wait out the longer grace of a training job already stopping.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("dogops.localcloud")
Sink = Callable[[str], None]
GRACE_S = 10.0  # from SIGTERM to SIGKILL: time to write a checkpoint, close files, say goodbye


class SupervisorClosed(RuntimeError):
    """The supervisor is stopping everything; no child may start now."""


class Child:
    """One supervised process (the leader of its own process group)."""

    def __init__(
        self,
        name: str,
        process: subprocess.Popen,
        sink: Sink | None,
        on_exit: Callable[[Child], None] | None = None,
    ):
        self.name = name
        self.process = process
        self.pid = process.pid
        self._sink = sink
        self._on_exit = on_exit
        self._exited = threading.Event()  # the leader is reaped and its group is gone
        self._drained = threading.Event()  # all output has reached the sink
        self._lock = threading.Lock()
        self._kill_at: float | None = None  # monotonic time of the SIGKILL, once terminating
        self._killer: threading.Timer | None = None
        self._pump_lock = threading.Lock()
        self._splitter = LineSplitter()
        threading.Thread(target=self._pump, daemon=True, name=f"pump-{name}").start()
        threading.Thread(target=self._reap, daemon=True, name=f"reap-{name}").start()

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self._exited.is_set() else None

    def running(self) -> bool:
        return not self._exited.is_set()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once the child has exited and its output is drained (None on timeout)."""
        if self._exited.wait(timeout) and self._drained.wait(timeout):
            return self.process.returncode
        return None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (no-op once it is gone)."""
        if self._exited.is_set():
            return
        # The group id is the leader's pid. Linux does not hand out a pid that is still some
        # group's id, so this reaches our group or nothing.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def terminate(self, grace: float) -> None:
        """SIGTERM now, SIGKILL after ``grace`` seconds if still running. Only the first call
        sends SIGTERM (a second one could cut the child's handler short); a later call with a
        shorter grace brings the SIGKILL forward, a longer one changes nothing."""
        kill_at = time.monotonic() + grace
        with self._lock:
            first = self._kill_at is None
            if not first and kill_at >= self._kill_at:
                return
            self._kill_at = kill_at
            if first:
                self.signal(signal.SIGTERM)
            else:
                self._killer.cancel()
            self._killer = threading.Timer(grace, self._kill_unless_exited)
            self._killer.daemon = True
            self._killer.start()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def wait_ready(self, probe: Callable[[], bool], timeout: float, every: float = 0.1) -> bool:
        """Poll ``probe`` until it answers True (ready), the child exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe():
                return True
            if self._exited.wait(every):
                return False
        return False

    def _kill_unless_exited(self) -> None:
        if not self._exited.is_set():
            self.kill()

    def sync_output(self, timeout: float = 1.0) -> None:
        """Return once everything the child has written so far has reached the sink, a last
        line without its newline included; or after ``timeout`` seconds. A Lambda execution
        environment prints, then answers the Runtime API: its invocation's log lines are all
        in once this returns."""
        deadline = time.monotonic() + timeout
        while True:
            with self._pump_lock:
                if self._drained.is_set():
                    return
                try:
                    fd = self.process.stdout.fileno()
                    pending = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
                except (OSError, ValueError):  # closed meanwhile: everything was read
                    return
                if pending == 0:  # every byte read, and (under the lock) delivered
                    self._deliver(self._splitter.flush())
                    return
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)

    def _pump(self) -> None:
        """Read the output in chunks and hand it on line by line. A chunk is read and its lines
        delivered under one lock, so `sync_output` can tell when nothing is in between."""
        fd = self.process.stdout.fileno()
        try:
            while True:
                select.select([fd], [], [])
                with self._pump_lock:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        self._deliver(self._splitter.flush())
                        return
                    self._deliver(self._splitter.feed(chunk))
        finally:
            self.process.stdout.close()
            self._drained.set()

    def _deliver(self, lines: list[str]) -> None:
        if self._sink is None:
            return
        for line in lines:
            try:
                self._sink(line)
            except Exception:  # keep reading: a child blocked on a full pipe never ends
                log.exception("%s: the output sink failed on a line", self.name)

    def _reap(self) -> None:
        self.process.wait()
        # What the leader left behind would hold the output pipe open and outlive the job.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._exited.set()
        if self._on_exit is not None:
            self._on_exit(self)


class LineSplitter:
    """Bytes in, lines out, as text mode's universal newlines split them (``\n``, ``\r\n``
    and a lone ``\r``: a progress bar's redraws are lines too), decoded as UTF-8 with
    replacement characters for anything else."""

    _BREAK = re.compile(rb"\r\n|\r|\n")

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[str]:
        data = self._rest + chunk
        parts = self._BREAK.split(data)
        self._rest = parts.pop()
        if data.endswith(b"\r"):  # a "\r\n" may be split across two chunks: wait and see
            self._rest = parts.pop() + b"\r"
        return [part.decode("utf-8", errors="replace") for part in parts]

    def flush(self) -> list[str]:
        """What is left: a last line without its line break."""
        rest, self._rest = self._rest, b""
        rest = rest.rstrip(b"\r")
        return [rest.decode("utf-8", errors="replace")] if rest else []


class Supervisor:
    """The registry of running children; `stop_all` ends every one of them."""

    def __init__(self) -> None:
        self._children: dict[int, Child] = {}
        self._lock = threading.Lock()
        self._closed = False

    def spawn(
        self,
        name: str,
        command: list[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        sink: Sink | None = None,
    ) -> Child:
        """Start ``command`` in its own process group; its output lines go to ``sink``."""
        with self._lock:
            if self._closed:
                raise SupervisorClosed(f"not starting {name}: the local cloud is stopping")
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                bufsize=0,
                start_new_session=True,
            )
            child = Child(name, process, sink, on_exit=self._forget)
            self._children[child.pid] = child
        return child

    def children(self) -> list[Child]:
        with self._lock:
            return list(self._children.values())

    def stop_all(self, grace: float | None = None) -> None:
        """Refuse new children, SIGTERM every one, SIGKILL those alive after ``grace`` (default
        `GRACE_S`, also for a child already given a longer one), and return once all are
        reaped."""
        grace = GRACE_S if grace is None else grace
        with self._lock:
            self._closed = True
            children = list(self._children.values())
        for child in children:
            child.terminate(grace)
        for child in children:
            child.wait()

    def _forget(self, child: Child) -> None:
        with self._lock:
            self._children.pop(child.pid, None)


class Workers:
    """The threads that drive work to its end (a training job, a command), one each; joined
    with one deadline when the local cloud stops."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, name: str, target: Callable, *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
