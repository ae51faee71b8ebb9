"""`ops pipeline`, the README's first command, end to end on a local cloud of its own: the
verdict passes, the endpoint scaled out above one instance and back, and no request was lost
(Locust's requests are the function's invocations plus its throttles, as CloudWatch counted
them in the local cloud)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess

import pytest
from rich.console import Console

from ops import pipeline
from ops.cli.pipeline import _summary
from tests.localcloud.conftest import run_ops

# Small settings: training without the tuning job (the chain test in test_ops_commands.py
# tunes), one epoch at 32 px; the policy's clock 20x faster; a load of 2 users (120 requests per
# policy minute: 2 instances at the target of 70) held long enough for AlarmHigh (3 minutes)
# and an instance's start, then a tail that outlasts AlarmLow's 15 minutes.
TRAIN = ["--skip-tuning", "--epochs=1", "--image-size=32"]
LOAD = ["--peak-users=2", "--base-users=1", "--warmup=60", "--hold=420", "--tail=1140"]


@pytest.mark.slow
def test_the_pipeline_scales_out_and_back_in_and_loses_no_request(tmp_path):
    env = {**os.environ, "DOGOPS_HOME": str(tmp_path / "home")}
    prefix = tmp_path / "report" / "lambda"
    command = [
        "pipeline",
        "--time-scale=20",
        f"--data={tmp_path / 'synth'}",
        f"--out={prefix}",
        "--json",
        *(f"--train-arg={arg}" for arg in TRAIN),
        *(f"--loadtest-arg={arg}" for arg in LOAD),
    ]
    try:
        done = run_ops(*command, env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-5000:]
        outcome = json.loads(done.stdout)
        assert outcome["passed"], json.dumps(outcome["verdict"], indent=2)
        assert [s["stage"] for s in outcome["stages"]] == [
            "local cloud", "data", "train", "promote", "load test",
        ]  # fmt: skip

        timeline = json.loads((tmp_path / "report" / "lambda_timeline.json").read_text())
        counts = [row.get("desired") for row in timeline["rows"] if row.get("desired")]
        peak = counts.index(max(counts))
        assert max(counts) > 1
        assert counts[-1] == 1 and peak < len(counts) - 1  # up, then back down

        totals = outcome["verdict"]["counts"]
        with open(f"{prefix}_stats.csv", newline="") as f:
            [aggregated] = [row for row in csv.DictReader(f) if row["Name"] == "Aggregated"]
        assert int(aggregated["Request Count"]) == totals["requests"]
        # CloudWatch has no Throttles datapoint when nothing was throttled.
        throttled = totals["lambda_throttles"] or 0
        assert totals["requests"] == totals["lambda_invocations"] + throttled
        assert totals["throttles"] == throttled
        assert totals["requests"] == (
            totals["successes"] + totals["throttles"] + totals["function_errors"]
            + totals["handler_errors"] + totals["other_errors"]
        )  # fmt: skip
        assert (tmp_path / "report" / "lambda_scaling.png").stat().st_size > 10_000
    finally:
        run_ops("local", "down", env=env)


def test_a_stage_that_fails_before_the_load_test_is_reported_not_an_old_verdict(
    tmp_path, monkeypatch
):
    # `--out` at the prefix of an earlier run that passed; this run's first stage is refused
    # (`ops local up --time-scale` takes at least 0.001), so no load test runs.
    monkeypatch.setenv("DOGOPS_HOME", str(tmp_path / "home"))
    prefix = tmp_path / "report" / "lambda"
    prefix.parent.mkdir()
    old = tmp_path / "report" / "lambda_verdict.json"
    old.write_text(json.dumps({"passed": True, "checks": [], "counts": {}}))
    plan = pipeline.Plan(time_scale=0.0001, data=tmp_path / "synth", report_prefix=prefix)
    outcome = pipeline.run(plan, lambda *_: None, output=subprocess.DEVNULL)
    assert [(s.name, s.exit_code) for s in outcome.stages] == [("local cloud", 2)]
    assert outcome.verdict is None and not outcome.passed
    assert outcome.to_json()["stopped_at"] == "local cloud"
    console = Console(file=io.StringIO(), width=200)
    _summary(console, outcome)
    said = console.file.getvalue()
    assert "stopped at local cloud" in said and "verdict" not in said, said
