"""`ops local` on the client side: it never signals a process it did not start, and it starts
without importing the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from ops.cli import app
from ops.localcloud import control
from tests.localcloud.conftest import run_ops


def test_down_with_a_stale_state_file_leaves_the_stranger_alone(tmp_path, monkeypatch):
    stranger = subprocess.Popen(["sleep", "600"])
    try:
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
    assert json.loads(answer.stdout) == cloud.environment()
