"""Start, find, inspect and stop the local cloud (`ops local up/down/status/env`).

A detached local cloud is a child process (`python -m ops.localcloud.server`) in its own session;
its URL, pid and log file are kept in ``$DOGOPS_HOME/localcloud.json`` (default ``~/.dogops``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from ops.errors import OpsError
from ops.jsonfile import write_atomic
from ops.localcloud.server import HEALTH_PATH, LocalCloud, client_environment

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 120.0  # time to save S3 (only changed objects) and stop jobs


def home() -> Path:
    return Path(os.environ.get("DOGOPS_HOME") or Path.home() / ".dogops").expanduser()


def state_file() -> Path:
    return home() / "localcloud.json"


@dataclass
class State:
    url: str
    pid: int
    home: str
    log: str | None = None

    def environment(self) -> dict[str, str]:
        return client_environment(self.url)


def read_state() -> State | None:
    try:
        document = json.loads(state_file().read_text())
        return State(**{k: document.get(k) for k in ("url", "pid", "home", "log")})
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def _write_state(state: State) -> None:
    write_atomic(state_file(), asdict(state), indent=2)


def health(url: str, timeout: float = 2.0) -> dict | None:
    try:
        response = httpx.get(url + HEALTH_PATH, timeout=timeout)
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def running() -> State | None:
    """The state of a local cloud that answers its health check, else None."""
    state = read_state()
    if state is None:
        return None
    info = health(state.url)
    if info is None or info.get("pid") != state.pid:
        return None
    return state


def require_running() -> State:
    state = running()
    if state is None:
        raise OpsError(
            "the local cloud is not running: start it with `ops local up --detach` "
            "(or pass --target aws)"
        )
    return state


def up_detached(port: int = 0) -> State:
    """Start the local cloud in the background and wait until it answers."""
    existing = running()
    if existing is not None:
        return existing
    root = home()
    root.mkdir(parents=True, exist_ok=True)
    ready = root / "localcloud.ready"
    ready.unlink(missing_ok=True)
    log_path = root / "localcloud.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ops.localcloud.server",
                "--home",
                str(root),
                "--port",
                str(port),
                "--ready-file",
                str(ready),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise OpsError(
                f"the local cloud exited at start (code {process.returncode}); see {log_path}"
            )
        if ready.exists():
            info = json.loads(ready.read_text())
            if health(info["url"]) is not None:
                state = State(url=info["url"], pid=process.pid, home=str(root), log=str(log_path))
                _write_state(state)
                return state
        time.sleep(0.1)
    process.terminate()
    raise OpsError(f"the local cloud did not start within {START_TIMEOUT_S:.0f} s; see {log_path}")


def up_foreground(port: int = 0, on_ready=None) -> None:
    """Serve in this process until Ctrl-C; the state file exists while it runs."""
    root = home()
    cloud = LocalCloud(root, port=port)

    def ready(cloud: LocalCloud) -> None:
        _write_state(State(url=cloud.url, pid=os.getpid(), home=str(root)))
        if on_ready:
            on_ready(cloud)

    try:
        cloud.serve_forever(on_ready=ready)
    finally:
        state = read_state()
        if state is not None and state.pid == os.getpid():
            state_file().unlink(missing_ok=True)


def down() -> bool:
    """Stop a detached local cloud (running jobs are stopped). False if none was running."""
    state = read_state()
    if state is None:
        return False
    stopped = False
    try:
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and _alive(state.pid):
            time.sleep(0.1)
        if _alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)
        stopped = True
    except ProcessLookupError:
        pass
    state_file().unlink(missing_ok=True)
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child (we started it in this process) counts as gone.
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished == 0
    except ChildProcessError:
        return True
