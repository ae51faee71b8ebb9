"""The SSM Run Command operations the local cloud answers: SendCommand, GetCommandInvocation,
ListCommandInvocations, ListCommands and CancelCommand, for ``AWS-RunShellScript`` on the local
training host. Shapes follow botocore's service model (the tests check them against it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ops.localcloud.routes import Handler, api_method
from ops.localcloud.ssm.commands import (
    PLUGIN,
    TERMINAL,
    Command,
    CommandRunner,
    Invocation,
    NotFound,
    SsmBackend,
)
from ops.localcloud.ssm.host import TRAINING_HOST_ID
from ops.localcloud.wire import AwsError, page

DOCUMENT = "AWS-RunShellScript"
PARAMETERS = ("commands", "workingDirectory", "executionTimeout")
DEFAULT_EXECUTION_TIMEOUT = 3600  # AWS-RunShellScript's default, in seconds
MAX_EXECUTION_TIMEOUT = 172800  # 48 hours, the document's maximum
# GetCommandInvocation returns "the first 24,000 characters written by the plugin to stdout"
# and "the first 8,000 characters written by the plugin to stderr"; a CommandPlugin's Output
# (ListCommandInvocations with Details) has a maximum length of 2,500, and the agent fills it
# with a 2,400-character summary of both streams (agent/contracts/plugin.go, TruncateOutput).
# https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html
# https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_CommandPlugin.html
STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
PLUGIN_OUTPUT_LIMIT = 2_400
ERROR_TITLE = "\n----------ERROR-------\n"
OUTPUT_CUT = "\n---Output truncated---"
ERROR_CUT = "\n---Error truncated----"


def plugin_output(stdout: str, stderr: str, limit: int = PLUGIN_OUTPUT_LIMIT) -> str:
    """A plugin's Output as the agent summarises it: stdout, then stderr under an ERROR title;
    when they do not fit, the long one is cut (both, each to half the room, if both are long),
    with a marker where it was cut."""
    title = ERROR_TITLE if stderr else ""
    room = limit - len(title)
    if len(stdout) + len(stderr) < room:
        return stdout + title + stderr
    half = room // 2
    if len(stdout) > half and len(stderr) > half:
        keep = (room - len(OUTPUT_CUT) - len(ERROR_CUT)) // 2
        return stdout[:keep] + OUTPUT_CUT + title + stderr[:keep] + ERROR_CUT
    if len(stdout) < half:
        return stdout + title + stderr[: room - len(ERROR_CUT) - len(stdout)] + ERROR_CUT
    return stdout[: room - len(OUTPUT_CUT) - len(stderr)] + OUTPUT_CUT + title + stderr


def _aws_error(exc: Exception) -> AwsError | None:
    """SSM's answer to a domain error."""
    if isinstance(exc, NotFound):
        return AwsError("InvalidCommandId", f"Command {exc} was not found")
    return None


_api = api_method(_aws_error)


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameters", message)


def _iso(moment: datetime | None) -> str:
    """GetCommandInvocation's StringDateTime (ISO 8601, UTC); empty until it applies."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if moment else ""


def _elapsed(invocation: Invocation) -> str:
    if invocation.started is None:
        return ""
    seconds = (invocation.ended or datetime.now(invocation.started.tzinfo)) - invocation.started
    return f"PT{seconds / timedelta(seconds=1):.3f}S"


def _execution_timeout(parameters: dict) -> int:
    raw = (parameters.get("executionTimeout") or [str(DEFAULT_EXECUTION_TIMEOUT)])[0]
    try:
        timeout = int(raw)
    except ValueError:
        timeout = 0
    if not 1 <= timeout <= MAX_EXECUTION_TIMEOUT:
        raise _invalid(f"executionTimeout must be 1 to {MAX_EXECUTION_TIMEOUT} seconds: {raw!r}")
    return timeout


class SsmApi:
    def __init__(self, backend: SsmBackend, runner: CommandRunner):
        self.backend = backend
        self.runner = runner

    def handlers(self) -> dict[str, Handler]:
        return {
            "SendCommand": self.send_command,
            "GetCommandInvocation": self.get_command_invocation,
            "ListCommandInvocations": self.list_command_invocations,
            "ListCommands": self.list_commands,
            "CancelCommand": self.cancel_command,
        }

    @_api
    def send_command(self, region: str, request: dict) -> dict:
        if request.get("DocumentName") != DOCUMENT:
            raise AwsError(
                "InvalidDocument",
                f"Document {request.get('DocumentName')!r}: only {DOCUMENT} runs locally",
            )
        if request.get("Targets"):
            raise _invalid("the local cloud sends commands by InstanceIds, not Targets")
        instance_ids = request.get("InstanceIds") or []
        if not instance_ids:
            raise _invalid("InstanceIds must name at least one instance")
        if len(set(instance_ids)) != len(instance_ids):
            raise AwsError("DuplicateInstanceId", "InstanceIds repeats an instance")
        unknown = [i for i in instance_ids if i != TRAINING_HOST_ID]
        if unknown:
            raise AwsError(
                "InvalidInstanceId",
                f"Instances {unknown} not in a valid state for account (the local cloud's "
                f"training host is {TRAINING_HOST_ID})",
            )
        parameters = request.get("Parameters") or {}
        extra = sorted(set(parameters) - set(PARAMETERS))
        if extra:
            raise _invalid(f"{DOCUMENT} has no parameter {', '.join(extra)}")
        commands = parameters.get("commands")
        if not commands or not all(isinstance(line, str) for line in commands):
            raise _invalid("Parameters.commands must be a non-empty list of strings")
        timeout = _execution_timeout(parameters)
        command = self.backend.add_command(
            region, request, instance_ids, self.runner.context.home, timeout
        )
        for invocation in command.invocations.values():
            self.runner.start(invocation)
        return {"Command": _describe(command)}

    @_api
    def get_command_invocation(self, region: str, request: dict) -> dict:
        plugin = request.get("PluginName")
        if plugin and plugin != PLUGIN:
            raise AwsError("InvalidPluginName", f"{DOCUMENT} has one plugin, {PLUGIN}")
        try:
            command = self.backend.command(region, request.get("CommandId", ""))
            invocation = command.invocations[request.get("InstanceId", "")]
        except (NotFound, KeyError) as exc:
            raise AwsError("InvocationDoesNotExist", "") from exc
        with invocation.lock:
            done = invocation.status in TERMINAL
            return {
                "CommandId": command.id,
                "InstanceId": invocation.instance_id,
                "Comment": command.comment,
                "DocumentName": command.document,
                "DocumentVersion": "$DEFAULT",
                "PluginName": PLUGIN,
                "ResponseCode": invocation.response_code,
                "ExecutionStartDateTime": _iso(invocation.started),
                "ExecutionElapsedTime": _elapsed(invocation),
                "ExecutionEndDateTime": _iso(invocation.ended),
                "Status": invocation.status,
                "StatusDetails": invocation.details,
                # Empty until the command has finished, as SSM reports it.
                "StandardOutputContent": invocation.stdout[:STDOUT_LIMIT] if done else "",
                "StandardOutputUrl": "",
                "StandardErrorContent": invocation.stderr[:STDERR_LIMIT] if done else "",
                "StandardErrorUrl": "",
                "CloudWatchOutputConfig": _no_cloudwatch(),
            }

    @_api
    def list_command_invocations(self, region: str, request: dict) -> dict:
        details = bool(request.get("Details"))
        rows = [
            _invocation_row(invocation, details)
            for command in self._commands(region, request)
            for invocation in command.invocations.values()
            if request.get("InstanceId") in (None, invocation.instance_id)
        ]
        rows = _filtered(rows, request.get("Filters") or [])
        items, token = page(rows, request, _invocation_identity, limit=50)
        return {"CommandInvocations": items, **token}

    @_api
    def list_commands(self, region: str, request: dict) -> dict:
        commands = [
            command
            for command in self._commands(region, request)
            if request.get("InstanceId") in (None, *command.invocations)
        ]
        rows = _filtered([_describe(command) for command in commands], request.get("Filters") or [])
        items, token = page(rows, request, lambda row: row["CommandId"], limit=50)
        return {"Commands": items, **token}

    @_api
    def cancel_command(self, region: str, request: dict) -> dict:
        command = self.backend.command(region, request.get("CommandId", ""))
        chosen = request.get("InstanceIds") or list(command.invocations)
        for instance_id in chosen:
            if instance_id not in command.invocations:
                message = f"{instance_id} is not a target of {command.id}"
                raise AwsError("InvalidInstanceId", message)
            self.runner.stop(command.invocations[instance_id], "Cancelled")
        return {}

    def _commands(self, region: str, request: dict) -> list[Command]:
        if request.get("CommandId"):
            return [self.backend.command(region, request["CommandId"])]
        return self.backend.commands(region)


def _no_notification() -> dict:
    return {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""}


def _no_cloudwatch() -> dict:
    return {"CloudWatchOutputEnabled": False}


def _describe(command: Command) -> dict:
    """The Command shape (SendCommand, ListCommands)."""
    invocations = list(command.invocations.values())
    statuses = [i.status for i in invocations]
    status = command.status()
    return {
        "CommandId": command.id,
        "DocumentName": command.document,
        "DocumentVersion": "$DEFAULT",
        "Comment": command.comment,
        "ExpiresAfter": command.requested
        + timedelta(seconds=command.timeout_seconds + command.execution_timeout),
        "Parameters": command.parameters,
        "InstanceIds": list(command.invocations),
        "Targets": [],
        "RequestedDateTime": command.requested,
        "Status": status,
        "StatusDetails": invocations[0].details if len(invocations) == 1 else status,
        "OutputS3Region": command.region,
        "MaxConcurrency": "50",
        "MaxErrors": "0",
        "TargetCount": len(invocations),
        "CompletedCount": sum(s in TERMINAL for s in statuses),
        "ErrorCount": sum(s in ("Failed", "TimedOut") for s in statuses),
        "DeliveryTimedOutCount": 0,
        "ServiceRole": "",
        "NotificationConfig": _no_notification(),
        "CloudWatchOutputConfig": _no_cloudwatch(),
        "TimeoutSeconds": command.timeout_seconds,
    }


def _invocation_row(invocation: Invocation, details: bool) -> dict:
    """A CommandInvocation (ListCommandInvocations); with ``details`` its plugin's result."""
    command = invocation.command
    with invocation.lock:
        row = {
            "CommandId": command.id,
            "InstanceId": invocation.instance_id,
            "InstanceName": "",
            "Comment": command.comment,
            "DocumentName": command.document,
            "DocumentVersion": "$DEFAULT",
            "RequestedDateTime": command.requested,
            "Status": invocation.status,
            "StatusDetails": invocation.details,
            "TraceOutput": "",
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "CommandPlugins": [],
            "ServiceRole": "",
            "NotificationConfig": _no_notification(),
            "CloudWatchOutputConfig": _no_cloudwatch(),
        }
        if details:
            plugin = {
                "Name": PLUGIN,
                "Status": invocation.status,
                "StatusDetails": invocation.details,
                "ResponseCode": invocation.response_code,
                "ResponseStartDateTime": invocation.started,
                "ResponseFinishDateTime": invocation.ended,
                "Output": plugin_output(invocation.stdout, invocation.stderr),
                "StandardOutputUrl": "",
                "StandardErrorUrl": "",
                "OutputS3Region": command.region,
            }
            row["CommandPlugins"] = [{k: v for k, v in plugin.items() if v is not None}]
        return row


def _filtered(rows: list[dict], filters: list[dict]) -> list[dict]:
    for item in filters:
        key, value = item.get("key"), item.get("value")
        if key not in ("Status", "DocumentName"):
            raise AwsError("InvalidFilterKey", f"filter key {key!r} is not supported locally")
        rows = [row for row in rows if row[key] == value]
    return rows


def _invocation_identity(row: dict) -> str:
    return f"{row['CommandId']}/{row['InstanceId']}"
