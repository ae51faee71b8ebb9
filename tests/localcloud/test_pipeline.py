"""`ops pipeline`, the README's first command, end to end on a local cloud of its own: the
verdict passes, the endpoint scaled out above one instance and back, and no request was lost
(Locust's requests are the function's invocations plus its throttles, as CloudWatch counted
them in the local cloud)."""

from __future__ import annotations

import csv
import json
import os

import pytest

from tests.localcloud.conftest import run_ops

# Small settings: one epoch at 32 px; the policy's clock 20x faster; a load of 2 users (120
# requests per policy minute: 2 instances at the target of 70) held long enough for AlarmHigh
# (3 minutes) and an instance's start, then a tail that outlasts AlarmLow's 15 minutes.
TRAIN = ["--epochs=1", "--image-size=32"]
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
