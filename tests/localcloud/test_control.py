"""`ops local` on the client side: it never signals a process it did not start, and it starts
without importing the server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ops.cli import app
from ops.localcloud import control
from tests.localcloud.conftest import run_ops, wait_for


def test_down_with_a_stale_state_file_leaves_the_stranger_alone(tmp_path, monkeypatch):
    stranger = subprocess.Popen(["sleep", "600"])
    try:
        # Until the child has exec'd, /proc shows the parent's copy with an empty command line
        # (seen once in CI): register the process `sleep` is, as a local cloud registers itself
        # only once it answers.
        wait_for(
            lambda: (control.process_identity(stranger.pid) or {}).get("cmdline"),
            lambda cmdline: cmdline and cmdline[0] == "sleep",
            10,
            0.01,
        )
        monkeypatch.setenv("DOGOPS_HOME", str(tmp_path))
        state = control.register("http://127.0.0.1:9", stranger.pid)
        # The state file once named a local cloud; that pid now belongs to `sleep`.
        document = json.loads(control.state_file().read_text())
        document["cmdline"] = [sys.executable, "-m", "ops.localcloud.app"]
        control.state_file().write_text(json.dumps(document))
        assert state.is_alive()  # as registered, it was that process

        down = run_ops("local", "down", "--json", env={**os.environ, "DOGOPS_HOME": str(tmp_path)})
        assert down.returncode == 0
        answer = json.loads(down.stdout)
        assert answer["stopped"] is False
        assert (
            f"pid {stranger.pid}" in answer["stale"] and "nothing was signalled" in answer["stale"]
        )
        assert down.stderr.startswith("warning: ")
        assert stranger.poll() is None
        assert not control.state_file().exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_a_reused_pid_is_told_apart_by_its_start_time(tmp_path, monkeypatch):
    monkeypatch.setenv("DOGOPS_HOME", str(tmp_path))
    state = control.register("http://127.0.0.1:9", os.getpid())
    state.start_time -= 1
    assert not state.is_alive()


def imported(module: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` a fresh interpreter has loaded after importing ``module``."""
    script = (
        f"import json, sys; import {module};"
        f"print(json.dumps(sorted(m for m in {candidates!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_ops_commands_do_not_import_the_server_side():
    assert imported("ops.cli", ("moto", "uvicorn", "starlette", "torch", "optuna")) == []
    # The client side of the local cloud (what `ops local` and `--target local` use): not even
    # the web server.
    server_side = ("moto", "uvicorn", "starlette", "torch", "optuna", "ops.localcloud.app")
    assert imported("ops.localcloud.control", server_side) == []


def test_env_prints_json_and_says_on_stderr_when_nothing_runs(cloud, tmp_path, monkeypatch):
    monkeypatch.setenv("DOGOPS_HOME", str(tmp_path))
    missing = run_ops("local", "env", "--json", env=dict(os.environ))
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("error: the local cloud is not running")

    control.register(cloud.url, os.getpid())  # the session's cloud, as `ops` finds it
    answer = CliRunner().invoke(app, ["local", "env", "--json"])
    assert answer.exit_code == 0
    sdk_config = tmp_path / control.SDK_CONFIG_NAME
    assert json.loads(answer.stdout) == {
        **control.client_environment(cloud.url),
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(sdk_config),
    }
    assert sdk_config.read_text() == control.SDK_CONFIG


def test_env_is_safe_to_eval_and_its_sdk_config_exists_once_eval_returns(
    cloud, tmp_path, monkeypatch
):
    home = tmp_path / "it's home"  # a quote and a space: the exports must be quoted
    monkeypatch.setenv("DOGOPS_HOME", str(home))
    control.register(cloud.url, os.getpid())
    printed = json.loads(CliRunner().invoke(app, ["local", "env", "--json"]).stdout)
    (home / control.SDK_CONFIG_NAME).unlink()  # as if it had never been written
    python = shlex.quote(sys.executable)
    shell = (
        f'eval "$({python} -m ops.cli local env)" && '
        f'{python} -c "import json, os; print(json.dumps(dict(os.environ)))"'
    )
    done = subprocess.run(
        ["sh", "-c", shell], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    evaluated = json.loads(done.stdout)
    assert {name: evaluated.get(name) for name in printed} == printed
    config = Path(evaluated["SAGEMAKER_USER_CONFIG_OVERRIDE"])
    assert config.parent == home
    assert config.read_text() == control.SDK_CONFIG
