"""Start, find, inspect and stop the local cloud (`ops local up/down/status/env`).

Client side only: this module imports nothing of the server (no moto, uvicorn, optuna), so
every `ops` command starts fast. A detached local cloud is a child process
(``python -m ops.localcloud.app``) in its own session; its URL, pid, log file and identity (its
command line and start time) are kept in ``$DOGOPS_HOME/localcloud.json`` (default
``~/.dogops``). `down` signals that pid only while it is still that process.
"""

from __future__ import annotations

import contextlib
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

HEALTH_PATH = "/_localcloud/health"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 120.0  # jobs' grace period, final uploads and saving S3
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account: what STS GetCallerIdentity answers
# The execution role every local cloud has from its first start (jobs, endpoints, functions
# may name it; `ops local env` offers it to the SageMaker SDK).
LOCAL_ROLE_NAME = "dogops-local-execution"
LOCAL_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{LOCAL_ROLE_NAME}"
# The bucket the SageMaker SDK would name itself (`sagemaker-<region>-<account>`); named in its
# config so that the SDK never asks STS for the account (below).
SDK_DEFAULT_BUCKET = f"sagemaker-{REGION}-{ACCOUNT}"
SDK_CONFIG_NAME = "sagemaker-config.yaml"
# The SageMaker Python SDK v3's defaults for a shell pointed at the local cloud (its config
# schema: sagemaker.core.config.config_schema). Each setting keeps a call from leaving the
# machine:
# - TelemetryOptOut: otherwise every decorated call (ModelTrainer.train, tuner.tune, ...) sends
#   a GET to https://sm-pysdk-t-<region>.s3.<region>.amazonaws.com on a background thread.
# - Session.DefaultS3Bucket: otherwise Session.default_bucket() names the bucket after the
#   account from an STS client built with an explicit endpoint_url
#   (https://sts.<region>.amazonaws.com), which AWS_ENDPOINT_URL cannot redirect, and asks STS
#   again (Session.account_id) to check the bucket's owner.
# - TrainingJob.RoleArn: the default execution role, so ModelTrainer works without role=
#   instead of resolving the caller's identity (an IAM user here, which has no role). The SDK
#   validates it (iam:SimulatePrincipalPolicy, then the role's trust policy must name
#   sagemaker.amazonaws.com); the local cloud bootstraps the role with that trust policy.
SDK_CONFIG = f"""\
# Written by `ops local env`: the SageMaker Python SDK's defaults for the local cloud.
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
      Session:
        DefaultS3Bucket: {SDK_DEFAULT_BUCKET}
  TrainingJob:
    RoleArn: {LOCAL_ROLE_ARN}
"""


def client_environment(url: str) -> dict[str, str]:
    """What boto3 and the AWS CLI need to talk to the local cloud (and nothing else)."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "localcloud",
        "AWS_SECRET_ACCESS_KEY": "localcloud",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # Credentials and region come from the variables above; never ask the EC2 instance
        # metadata service (169.254.169.254) for either.
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def sdk_environment(root: Path) -> dict[str, str]:
    """What the SageMaker SDK v3 needs on top of :func:`client_environment`: its config file
    (written under ``root`` now, so it exists once the variable naming it is handed out)."""
    path = root / SDK_CONFIG_NAME
    if not path.exists() or path.read_text() != SDK_CONFIG:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(SDK_CONFIG)
        tmp.replace(path)
    return {"SAGEMAKER_USER_CONFIG_OVERRIDE": str(path)}


def home() -> Path:
    return Path(os.environ.get("DOGOPS_HOME") or Path.home() / ".dogops").expanduser()


def state_file() -> Path:
    return home() / "localcloud.json"


def process_identity(pid: int) -> dict | None:
    """What tells a process apart from a later one with the same pid: its start time (clock
    ticks after boot, /proc/<pid>/stat field 22) and command line. None when no such process
    runs (a zombie has exited). Without /proc (macOS), ``ps`` says the same."""
    if not Path("/proc/self/stat").exists():
        found = subprocess.run(
            ["ps", "-o", "lstart=", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
        ).stdout.strip()
        # lstart is a fixed-width date ("Thu Nov 26 01:23:08 2026"), then the command.
        return {"start_time": found[:24], "cmdline": found[24:].split()} if found else None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in (...) may hold spaces
    if fields[0] == "Z":
        return None
    arguments = [a.decode(errors="replace") for a in cmdline.split(b"\0")[:-1]]
    return {"start_time": int(fields[19]), "cmdline": arguments}


@dataclass
class State:
    url: str
    pid: int
    home: str
    log: str | None = None
    start_time: int | str | None = None
    cmdline: list[str] | None = None

    def environment(self) -> dict[str, str]:
        """What `ops local env` prints: boto3's, the AWS CLI's and the SageMaker SDK's."""
        return {**client_environment(self.url), **sdk_environment(Path(self.home or home()))}

    def is_alive(self) -> bool:
        """Whether the process this state names still runs (not a stranger reusing the pid)."""
        if self.start_time is None:  # written before identities were kept: ask the process
            info = health(self.url)
            return info is not None and info.get("pid") == self.pid
        identity = {"start_time": self.start_time, "cmdline": self.cmdline}
        return process_identity(self.pid) == identity


def read_state() -> State | None:
    try:
        document = json.loads(state_file().read_text())
        return State(**{k: document.get(k) for k in State.__dataclass_fields__})
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def register(url: str, pid: int, log: str | None = None) -> State:
    """Record the local cloud running as ``pid`` (with its identity) in the state file."""
    identity = process_identity(pid) or {}
    state = State(url=url, pid=pid, home=str(home()), log=log, **identity)
    write_atomic(state_file(), asdict(state), indent=2)
    return state


def unregister(pid: int) -> None:
    """Remove the state file if it still names ``pid``."""
    state = read_state()
    if state is not None and state.pid == pid:
        state_file().unlink(missing_ok=True)


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


def time_scale(state: State) -> float:
    """The running local cloud's ``--time-scale`` (policy seconds per wall second)."""
    info = health(state.url) or {}
    return float(info.get("time_scale") or 1.0)


def require_running() -> State:
    state = running()
    if state is None:
        raise OpsError(
            "the local cloud is not running: start it with `ops local up --detach` "
            "(or pass --target aws)"
        )
    return state


def up_detached(port: int = 0, time_scale: float = 1.0) -> State:
    """Start the local cloud in the background and wait until it answers. ``time_scale``:
    policy seconds per wall second for autoscaling (periods and cooldowns shrink)."""
    existing = running()
    if existing is not None:
        return existing
    root = home()
    root.mkdir(parents=True, exist_ok=True)
    ready = root / "localcloud.ready"
    ready.unlink(missing_ok=True)
    log_path = root / "localcloud.log"
    command = [sys.executable, "-m", "ops.localcloud.app", "--home", str(root)]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                *command,
                *("--port", str(port), "--ready-file", str(ready)),
                *("--time-scale", str(time_scale)),
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
                return register(info["url"], process.pid, log=str(log_path))
        time.sleep(0.1)
    process.terminate()
    raise OpsError(f"the local cloud did not start within {START_TIMEOUT_S:.0f} s; see {log_path}")


@dataclass
class Stopped:
    """What `down` did: stopped a local cloud, found none, or found a stale state file."""

    stopped: bool
    stale: str | None = None  # why the state file was stale (it was removed)


def down() -> Stopped:
    """Stop the local cloud the state file names (its running jobs too), after checking it is
    still that process: a pid reused by another program is never signalled."""
    state = read_state()
    if state is None:
        return Stopped(False)
    if not state.is_alive():
        state_file().unlink(missing_ok=True)
        return Stopped(
            False,
            stale=f"{state_file()} named pid {state.pid}, which is no longer the local cloud "
            "started from it; the file was removed and nothing was signalled",
        )
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while state.is_alive() and time.monotonic() < deadline:
        _reap_if_child(state.pid)
        time.sleep(0.1)
    if state.is_alive():
        os.kill(state.pid, signal.SIGKILL)
    state_file().unlink(missing_ok=True)
    return Stopped(True)


def _reap_if_child(pid: int) -> None:
    """A local cloud started by this very process stays a zombie until it is waited for."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
