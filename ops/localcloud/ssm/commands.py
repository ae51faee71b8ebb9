"""Run Command's records (a command, one invocation per instance) and the runner that executes
an invocation on the local training host as the SSM agent does on a Linux instance.

The agent writes the ``commands`` to ``_script.sh`` in the invocation's orchestration folder and
runs it with ``sh`` (on Ubuntu ``/bin/sh`` is dash), stdout and stderr to files there, in a
process group of its own. When ``executionTimeout`` passes, or the command is cancelled, the
group is killed and the plugin's exit code is 137 (128 + SIGKILL); statuses then are TimedOut
and Cancelled (aws/amazon-ssm-agent: agent/plugins/runscript, agent/executers).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ops.localcloud import control
from ops.localcloud.service import Context
from ops.localcloud.ssm.host import host_dir
from ops.localcloud.supervisor import Child, SupervisorClosed, Workers
from ops.localcloud.wire import now

log = logging.getLogger("dogops.localcloud")
PLUGIN = "aws:runShellScript"
STOPPED_EXIT_CODE = 137  # the agent's code for a script it killed (timeout or cancel)
TERMINAL = ("Success", "Failed", "TimedOut", "Cancelled")
DETAILS = {"TimedOut": "ExecutionTimedOut"}  # StatusDetails where it differs from Status


class NotFound(Exception):
    pass


@dataclass
class Invocation:
    """The command on one instance: the record GetCommandInvocation reports."""

    command: Command
    instance_id: str
    folder: Path  # the orchestration folder: _script.sh, stdout, stderr
    status: str = "Pending"
    response_code: int = -1  # -1 until the script has ended, as SSM reports it
    started: datetime | None = None
    ended: datetime | None = None
    stdout: str = ""
    stderr: str = ""
    stop_reason: str | None = None  # "TimedOut" or "Cancelled" once the runner kills it
    child: Child | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def details(self) -> str:
        return DETAILS.get(self.status, self.status)

    def mark_running(self, child: Child) -> None:
        with self.lock:
            self.child, self.status, self.started = child, "InProgress", now()

    def request_stop(self, reason: str) -> Child | None:
        """Ask for a stop; the child to kill, if it runs (None: nothing started or ended)."""
        with self.lock:
            if self.status in TERMINAL or self.stop_reason:
                return None
            self.stop_reason = reason
            return self.child

    def finish(self, exit_code: int | None, stdout: str = "", stderr: str = "") -> None:
        with self.lock:
            self.ended = now()
            self.started = self.started or self.ended
            self.stdout, self.stderr = stdout, stderr
            if self.stop_reason:
                self.status, self.response_code = self.stop_reason, STOPPED_EXIT_CODE
            elif exit_code is None:  # it never ran (the local cloud is stopping)
                self.status, self.response_code = "Failed", -1
            else:
                # A script killed by a signal (the local cloud stopping): 128 + signal, as sh says.
                self.response_code = exit_code if exit_code >= 0 else 128 - exit_code
                self.status = "Success" if exit_code == 0 else "Failed"


@dataclass
class Command:
    id: str
    region: str
    document: str
    parameters: dict[str, list[str]]
    comment: str
    timeout_seconds: int  # the delivery timeout (the local host picks a command up at once)
    execution_timeout: int
    requested: datetime
    invocations: dict[str, Invocation] = field(default_factory=dict)

    @property
    def commands(self) -> list[str]:
        return self.parameters["commands"]

    def status(self) -> str:
        """One instance per command here, so the command's status is its invocation's."""
        statuses = {i.status for i in self.invocations.values()}
        for status in ("InProgress", "Pending", "Failed", "TimedOut", "Cancelled"):
            if status in statuses:
                return status
        return "Success"


class SsmBackend:
    """The only owner of the commands, per region."""

    def __init__(self) -> None:
        self._commands: dict[tuple[str, str], Command] = {}
        self._lock = threading.Lock()

    def add_command(
        self, region: str, request: dict, instance_ids: list[str], root: Path, timeout: int
    ) -> Command:
        command = Command(
            id=str(uuid.uuid4()),
            region=region,
            document=request["DocumentName"],
            parameters={**request.get("Parameters", {}), "executionTimeout": [str(timeout)]},
            comment=request.get("Comment", ""),
            timeout_seconds=int(request.get("TimeoutSeconds") or 3600),
            execution_timeout=timeout,
            requested=now(),
        )
        for instance_id in instance_ids:
            # Where the agent keeps a command's script and output on the instance.
            folder = host_dir(root, instance_id) / "orchestration" / command.id
            command.invocations[instance_id] = Invocation(
                command, instance_id, folder / "awsrunShellScript" / "0.awsrunShellScript"
            )
        with self._lock:
            self._commands[(region, command.id)] = command
        return command

    def command(self, region: str, command_id: str) -> Command:
        with self._lock:
            found = self._commands.get((region, command_id))
        if found is None:
            raise NotFound(command_id)
        return found

    def commands(self, region: str) -> list[Command]:
        with self._lock:
            found = [c for (r, _), c in self._commands.items() if r == region]
        return sorted(found, key=lambda c: c.requested, reverse=True)  # newest first, as SSM


class CommandRunner:
    """Runs each invocation on a thread of its own, its script as a supervised child."""

    def __init__(self, context: Context):
        self.context = context
        self.workers = Workers()

    def environment(self) -> dict[str, str]:
        """The host's environment: this machine's, with the AWS settings an instance gets from
        its instance profile replaced by the local cloud's endpoint and dummy credentials."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return {**inherited, **control.client_environment(self.context.url)}

    def start(self, invocation: Invocation) -> None:
        self.workers.start(f"ssm-{invocation.command.id}", self._run, invocation)

    def stop(self, invocation: Invocation, reason: str) -> None:
        child = invocation.request_stop(reason)
        if child is not None:
            child.kill()  # the agent kills the script's process group outright

    def _run(self, invocation: Invocation) -> None:
        try:
            self._execute(invocation)
        except Exception as exc:  # a bug or an environment problem: report it on the record
            log.exception("SSM command %s", invocation.command.id)
            invocation.finish(None, stderr=f"{type(exc).__name__}: {exc}")

    def _execute(self, invocation: Invocation) -> None:
        folder = invocation.folder
        folder.mkdir(parents=True, exist_ok=True)
        script, stdout, stderr = folder / "_script.sh", folder / "stdout", folder / "stderr"
        script.write_text("\n".join(invocation.command.commands) + "\n")
        script.chmod(0o700)
        working = (invocation.command.parameters.get("workingDirectory") or [""])[0]
        # `exec`: the script's shell leads the process group that a timeout or cancel kills.
        command = ["/bin/sh", "-c", 'exec /bin/sh "$0" >"$1" 2>"$2"', script, stdout, stderr]
        if invocation.stop_reason:  # cancelled before it started
            invocation.finish(None)
            return
        try:
            child = self.context.supervisor.spawn(
                f"ssm/{invocation.command.id}",
                [str(part) for part in command],
                cwd=Path(working) if working else folder,
                env=self.environment(),
            )
        except SupervisorClosed as exc:
            invocation.finish(None, stderr=str(exc))
            return
        invocation.mark_running(child)
        if invocation.stop_reason:  # cancelled while it was starting
            child.kill()
        if child.wait(invocation.command.execution_timeout) is None:
            self.stop(invocation, "TimedOut")
        code = child.wait()
        invocation.finish(code, _read(stdout), _read(stderr))
        log.info(
            "SSM %s on %s: %s (exit %s)",
            invocation.command.id,
            invocation.instance_id,
            invocation.status,
            invocation.response_code,
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
