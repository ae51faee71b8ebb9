"""The process supervisor: process groups, output to a sink, readiness, SIGTERM then SIGKILL,
reaping. Children here are small Python scripts; nothing waits on a clock it could await."""

from __future__ import annotations

import signal
import sys
import threading
import time

import pytest

from ops.localcloud.control import process_identity
from ops.localcloud.sagemaker.records import TrainingJob
from ops.localcloud.supervisor import Supervisor, SupervisorClosed


class Lines:
    """A sink that lets a test wait for a line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(line.startswith(prefix) for line in self.lines), timeout
            )
        assert found, f"no line starting with {prefix!r} in {self.lines}"
        return next(line for line in self.lines if line.startswith(prefix))


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether ``pid`` has exited (a zombie counts as exited) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while process_identity(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def supervisor():
    supervisor = Supervisor()
    yield supervisor
    supervisor.stop_all(grace=1.0)


def test_output_reaches_the_sink_and_the_exit_code_is_kept(supervisor):
    lines = Lines()
    child = supervisor.spawn(
        "echo", python("print('one'); print('two'); raise SystemExit(3)"), sink=lines
    )
    assert child.wait(timeout=30) == 3
    assert lines.lines == ["one", "two"]
    assert supervisor.children() == []


def test_what_the_leader_leaves_behind_is_killed_with_it(supervisor):
    lines = Lines()
    code = (
        "import subprocess, sys;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        "print('grandchild', p.pid, flush=True)"
    )
    child = supervisor.spawn("leader", python(code), sink=lines)
    grandchild = int(lines.wait_for("grandchild").split()[1])
    assert child.wait(timeout=30) == 0
    assert gone(grandchild)


def test_sigterm_then_sigkill_after_the_grace_period(supervisor):
    lines = Lines()
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "print('ignoring SIGTERM', flush=True); time.sleep(600)"
    )
    child = supervisor.spawn("stubborn", python(code), sink=lines)
    lines.wait_for("ignoring SIGTERM")
    child.terminate(grace=0.5)
    child.terminate(grace=600)  # a second request does not restart the grace period
    assert child.wait(timeout=30) == -signal.SIGKILL


def test_stop_all_reaps_every_child_and_refuses_new_ones(supervisor):
    children = [supervisor.spawn(f"c{i}", python("import time; time.sleep(600)")) for i in range(2)]
    supervisor.stop_all(grace=5.0)
    assert [child.returncode for child in children] == [-signal.SIGTERM, -signal.SIGTERM]
    assert supervisor.children() == []
    with pytest.raises(SupervisorClosed):
        supervisor.spawn("late", python("pass"))


def test_readiness_probe(supervisor, tmp_path):
    flag = tmp_path / "ready"
    code = f"import pathlib, time; pathlib.Path({str(flag)!r}).touch(); time.sleep(600)"
    server = supervisor.spawn("server", python(code))
    assert server.wait_ready(flag.exists, timeout=60)
    crashing = supervisor.spawn("crashing", python("raise SystemExit(1)"))
    assert not crashing.wait_ready(lambda: False, timeout=60)
    assert crashing.returncode == 1


def test_an_instance_either_gets_the_stop_or_never_starts():
    job = TrainingJob(name="race", region="us-east-1", request={})
    started = job.start_instance(lambda: "algo-1")
    assert job.request_stop() == ["algo-1"]
    assert job.start_instance(lambda: pytest.fail("started after the stop")) is None
    assert started == "algo-1" and job.status == "Stopping"
