"""SSM Run Command against the local cloud with boto3, as `ops train --on ec2` uses it: the
commands run under /bin/sh on the training host and are reported as SSM reports them (status,
exit code, output truncated at SSM's limits, shapes per botocore's service model)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import boto3
import pytest

from ops.localcloud.app import LocalCloud
from ops.localcloud.ssm.api import plugin_output
from ops.localcloud.ssm.host import TRAINING_HOST_ID
from tests.localcloud.conftest import validate_response, wait_for

TERMINAL = ("Success", "Failed", "TimedOut", "Cancelled")


def ssm_client(url: str):
    """boto3's SSM client pointed at the local cloud at ``url``."""
    return boto3.client(
        "ssm",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def ssm(cloud):
    return ssm_client(cloud.url)


def send(ssm, *commands: str, **parameters: list[str]) -> str:
    response = ssm.send_command(
        InstanceIds=[TRAINING_HOST_ID],
        DocumentName="AWS-RunShellScript",
        Comment="test",
        Parameters={"commands": list(commands), **parameters},
    )
    validate_response(ssm, "SendCommand", response)
    assert response["Command"]["Status"] == "Pending"
    return response["Command"]["CommandId"]


def finished(ssm, command_id: str, timeout: float = 60.0) -> dict:
    invocation = wait_for(
        lambda: ssm.get_command_invocation(CommandId=command_id, InstanceId=TRAINING_HOST_ID),
        lambda i: i["Status"] in TERMINAL,
        timeout,
        poll=0.1,
    )
    validate_response(ssm, "GetCommandInvocation", invocation)
    return invocation


def test_commands_run_under_bin_sh_and_report_success(ssm):
    command_id = send(
        ssm,
        'echo "shell: $(readlink /proc/$$/exe)"',
        'echo "endpoint: $AWS_ENDPOINT_URL"',
        "echo to-stderr >&2",
    )
    invocation = finished(ssm, command_id)
    assert (invocation["Status"], invocation["StatusDetails"]) == ("Success", "Success")
    assert invocation["ResponseCode"] == 0
    assert invocation["PluginName"] == "aws:runShellScript"
    stdout = invocation["StandardOutputContent"]
    assert f"shell: {os.path.realpath('/bin/sh')}\n" in stdout
    # The host reaches AWS through the local cloud, as an instance reaches it with its role.
    assert f"endpoint: {ssm.meta.endpoint_url}\n" in stdout
    assert invocation["StandardErrorContent"] == "to-stderr\n"
    assert invocation["ExecutionStartDateTime"] <= invocation["ExecutionEndDateTime"]


def test_a_failing_command_is_failed_with_its_exit_code(ssm):
    command_id = send(ssm, "echo before", "echo oops >&2", "exit 3", "echo after")
    invocation = finished(ssm, command_id)
    assert (invocation["Status"], invocation["StatusDetails"]) == ("Failed", "Failed")
    assert invocation["ResponseCode"] == 3
    assert invocation["StandardOutputContent"] == "before\n"
    assert invocation["StandardErrorContent"] == "oops\n"

    listed = ssm.list_command_invocations(CommandId=command_id, Details=True)
    validate_response(ssm, "ListCommandInvocations", listed)
    [row] = listed["CommandInvocations"]
    [plugin] = row["CommandPlugins"]
    assert (row["Status"], plugin["ResponseCode"]) == ("Failed", 3)
    assert plugin["Output"] == "before\n\n----------ERROR-------\noops\n"
    commands = ssm.list_commands(CommandId=command_id)
    validate_response(ssm, "ListCommands", commands)
    assert commands["Commands"][0]["Status"] == "Failed"
    assert (commands["Commands"][0]["CompletedCount"], commands["Commands"][0]["ErrorCount"]) == (
        1,
        1,
    )


@pytest.mark.skipif(
    not os.path.realpath("/bin/sh").endswith("dash"), reason="/bin/sh is not dash here"
)
def test_a_bash_only_script_fails_under_dash_as_on_ubuntu(ssm):
    # What `ops train --on ec2` used to send: dash stops at its first line.
    command_id = send(ssm, "set -euo pipefail", "echo never")
    invocation = finished(ssm, command_id)
    assert (invocation["Status"], invocation["ResponseCode"]) == ("Failed", 2)
    assert "pipefail" in invocation["StandardErrorContent"]
    assert invocation["StandardOutputContent"] == ""


def test_execution_timeout_kills_the_script_and_reports_timed_out(ssm, tmp_path):
    pid_file = tmp_path / "pid"
    command_id = send(
        ssm,
        "sleep 300 &",
        f"echo $! > {pid_file}",
        "wait",
        executionTimeout=["1"],
    )
    invocation = finished(ssm, command_id)
    assert (invocation["Status"], invocation["StatusDetails"]) == ("TimedOut", "ExecutionTimedOut")
    assert invocation["ResponseCode"] == 137  # the agent's code for a script it killed
    sleeper = int(pid_file.read_text())
    wait_for(lambda: not Path(f"/proc/{sleeper}").exists(), bool, timeout=10, poll=0.1)


def test_output_is_truncated_as_ssm_truncates_it(ssm):
    command_id = send(
        ssm,
        "i=0; while [ $i -lt 300 ]; do printf '%0100d' $i; i=$((i+1)); done",  # 30,000 chars
        "i=0; while [ $i -lt 90 ]; do printf '%0100d' $i >&2; i=$((i+1)); done",  # 9,000 chars
    )
    invocation = finished(ssm, command_id)
    assert invocation["Status"] == "Success"
    assert invocation["StandardOutputContent"] == "".join(f"{i:0100d}" for i in range(240))
    assert len(invocation["StandardErrorContent"]) == 8_000
    # The plugin's Output keeps the start of both streams, each marked where it was cut.
    listed = ssm.list_command_invocations(CommandId=command_id, Details=True)
    output = listed["CommandInvocations"][0]["CommandPlugins"][0]["Output"]
    assert len(output) <= 2_400
    stdout, stderr = output.split("\n----------ERROR-------\n")
    assert stdout.endswith("\n---Output truncated---") and stdout.startswith(f"{0:0100d}")
    assert stderr.endswith("\n---Error truncated----") and stderr.startswith(f"{0:0100d}")


def test_cancel_command_stops_it(ssm):
    command_id = send(ssm, "echo started", "sleep 300")
    wait_for(
        lambda: ssm.get_command_invocation(CommandId=command_id, InstanceId=TRAINING_HOST_ID),
        lambda i: i["Status"] == "InProgress",
        poll=0.1,
    )
    ssm.cancel_command(CommandId=command_id)
    invocation = finished(ssm, command_id)
    assert (invocation["Status"], invocation["ResponseCode"]) == ("Cancelled", 137)


def test_requests_ssm_refuses(ssm):
    with pytest.raises(ssm.exceptions.InvalidInstanceId):
        ssm.send_command(
            InstanceIds=["i-0123456789abcdef0"],
            DocumentName="AWS-RunShellScript",
            Parameters={"commands": ["true"]},
        )
    with pytest.raises(ssm.exceptions.InvalidDocument):
        ssm.send_command(
            InstanceIds=[TRAINING_HOST_ID],
            DocumentName="AWS-RunPowerShellScript",
            Parameters={"commands": ["true"]},
        )
    with pytest.raises(ssm.exceptions.InvalidParameters):
        send(ssm, "true", executionTimeout=["soon"])
    with pytest.raises(ssm.exceptions.InvocationDoesNotExist):
        ssm.get_command_invocation(
            CommandId="00000000-0000-0000-0000-000000000000", InstanceId=TRAINING_HOST_ID
        )


def test_stopping_the_local_cloud_stops_running_commands():
    with tempfile.TemporaryDirectory() as home:
        cloud = LocalCloud(Path(home), persist=False).start()
        try:
            client = ssm_client(cloud.url)
            pid_file = Path(home) / "pid"
            send(client, f"echo $$ > {pid_file}", "sleep 300")
            wait_for(pid_file.exists, bool, timeout=30, poll=0.1)
            shell = int(pid_file.read_text())
        finally:
            cloud.stop()
        assert not Path(f"/proc/{shell}").exists()  # stop() returns once every child is reaped


@pytest.mark.parametrize(
    ("stdout", "stderr", "kept_whole"),
    [
        ("out\n", "err\n", "both"),
        ("o" * 5000, "err\n", "stderr"),  # a long stdout is cut, the error stays readable
        ("out\n", "e" * 5000, "stdout"),
    ],
)
def test_a_plugins_output_keeps_what_fits_and_marks_what_is_cut(stdout, stderr, kept_whole):
    output = plugin_output(stdout, stderr)
    assert len(output) <= 2_400
    shown_out, shown_err = output.split("\n----------ERROR-------\n")
    out_cut, err_cut = "\n---Output truncated---", "\n---Error truncated----"
    if kept_whole in ("both", "stdout"):
        assert shown_out == stdout
    else:
        assert shown_out == stdout[: len(shown_out) - len(out_cut)] + out_cut
    if kept_whole in ("both", "stderr"):
        assert shown_err == stderr
    else:
        assert shown_err == stderr[: len(shown_err) - len(err_cut)] + err_cut
