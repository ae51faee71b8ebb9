"""`ops scaling simulate`: the mission's policy on traffic profiles, CSV input, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.scaling.policy import InvalidScalingInput, ScalableTarget, TargetTrackingPolicy
from ops.scaling.simulate import (
    PROFILES,
    Simulation,
    policy_from_tfvars,
    profile,
    read_requests_csv,
    simulate,
)

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scaling_activities(result: Simulation) -> list[tuple[float, float | None, int, int, str]]:
    """(start minute, end minute, from, to, status) of each activity that changed capacity."""
    return [
        (
            a.start_time / 60,
            None if a.end_time is None else a.end_time / 60,
            a.previous_capacity,
            a.desired_capacity,
            str(a.status_code),
        )
        for a in result.activities
        if a.desired_capacity is not None
    ]


@pytest.fixture(scope="module")
def mission() -> tuple[ScalableTarget, TargetTrackingPolicy]:
    return policy_from_tfvars()


def test_the_mission_policy_comes_from_the_tfvars_terraform_applies(mission) -> None:
    target, policy = mission
    assert target.resource_id == "endpoint/dog-breed-classifier/variant/AllTraffic"
    assert (target.min_capacity, target.max_capacity) == (1, 4)
    assert policy.target_value == 70
    assert (policy.scale_in_cooldown, policy.scale_out_cooldown) == (30, 300)
    assert policy.disable_scale_in is False


def test_mission_policy_on_a_step_load(mission) -> None:
    """35 requests/min, then 259 from minute 5 (3.7 x the target of 70).

    Expected: AlarmHigh sees minutes 5, 6, 7 above 70 and fires at 8:00; ceil(1 x 259 / 70) = 4
    is within max 4, so one activity sets 4 instances at once. They serve after the 5-minute
    warm-up, from 13:00, when the activity succeeds and the 300 s scale-out cooldown starts.
    At 4 instances the metric is 64.75: under the target and above AlarmLow's 63, so the fleet
    holds at 4 to the end; the 5 quiet minutes before the step are too few for AlarmLow.
    """
    target, policy = mission
    result = simulate(profile("step", 60, base=35, peak=259), target, policy)
    assert scaling_activities(result) == [(8.0, 13.0, 1, 4, "Successful")]
    activity = next(a for a in result.activities if a.desired_capacity is not None)
    assert "-AlarmHigh-" in activity.cause
    assert activity.cause.endswith("triggered policy dog-breed-classifier-AllTraffic-invocations")
    serving = [m.in_service for m in result.minutes]
    assert serving == [1] * 13 + [4] * 47
    assert [m.minute for m in result.minutes if m.high == "ALARM"] == list(range(7, 13))
    assert {m.low for m in result.minutes} == {"OK"}
    assert result.minutes[13].metric == pytest.approx(64.75)
    assert [m.desired for m in result.minutes[6:9]] == [1, 4, 4]


def test_mission_policy_on_a_spike_scales_in_one_instance_a_minute(mission) -> None:
    target, policy = mission
    result = simulate(profile("spike", 60, base=35, peak=259), target, policy)
    # Out at 13:00 (the spike began at 10), serving at 18:00; the spike ends at 20:00, AlarmLow
    # fires after 15 quiet minutes (35:00) and the 30 s scale-in cooldown lets a step a minute.
    assert scaling_activities(result) == [
        (13.0, 18.0, 1, 4, "Successful"),
        (35.0, 35.0, 4, 3, "Successful"),
        (36.0, 36.0, 3, 2, "Successful"),
        (37.0, 37.0, 2, 1, "Successful"),
    ]
    codes = [a.not_scaled_reasons[0]["Code"] for a in result.activities if a.not_scaled_reasons]
    assert codes == ["TargetServicePutResourceAsUnscalable", "AlreadyAtMinCapacity"]


def test_the_scale_out_cooldown_slows_a_ramp_to_one_step_per_cooldown(mission) -> None:
    target, policy = mission
    result = simulate(profile("ramp", 60, base=35, peak=259), target, policy)
    outs = [(start, end, a, b) for start, end, a, b, _ in scaling_activities(result) if b > a]
    assert outs == [(8.0, 13.0, 1, 2), (18.0, 23.0, 2, 3), (28.0, 33.0, 3, 4)]
    # AlarmHigh fired again at 2 and at 3 instances a minute before each cooldown ended: the
    # next +1 was no larger than the +1 that started the cooldown, so it waited.
    held = [m.minute for m in result.minutes if any("scale-out cooldown" in e for e in m.events)]
    assert held == [16, 26]


def test_a_longer_warmup_delays_the_new_instances_not_the_decision(mission) -> None:
    target, policy = mission
    result = simulate(profile("step", 30, base=35, peak=259), target, policy, warmup_seconds=420)
    assert scaling_activities(result) == [(8.0, 15.0, 1, 4, "Successful")]


def test_profiles_have_the_requested_shape() -> None:
    assert profile("step", 7, base=1, peak=9) == [1, 1, 1, 1, 1, 9, 9]
    spike = profile("spike", 25, base=1, peak=9)
    assert [i for i, v in enumerate(spike) if v == 9] == list(range(10, 20))
    ramp = profile("ramp", 11, base=0, peak=10)
    assert ramp[0] == ramp[-1] == 0 and ramp[5] == 10 and ramp == ramp[::-1]
    assert set(PROFILES) == {"step", "spike", "ramp"}
    with pytest.raises(InvalidScalingInput):
        profile("step", 0, base=1, peak=2)


def test_csv_accepts_a_header_comments_and_a_minute_column(tmp_path: Path) -> None:
    path = tmp_path / "load.csv"
    path.write_text("# a quiet start\nminute,requests\n0,10\n1,12.5\n\n2,300\n")
    assert read_requests_csv(path) == [10, 12.5, 300]
    path.write_text("40\n50\n")
    assert read_requests_csv(path) == [40, 50]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("requests\n10\n-5\n", "load.csv:3: requests per minute must be a finite number >= 0"),
        ("10\nmany\n", "load.csv:2: 'many' is not a number of requests per minute"),
        ("10\nnan\n", "load.csv:2: requests per minute must be a finite number >= 0"),
        ("requests\n", "has no requests per minute"),
    ],
)
def test_csv_with_bad_values_is_refused_with_the_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "load.csv"
    path.write_text(text)
    with pytest.raises(InvalidScalingInput, match=message):
        read_requests_csv(path)


# The CLI


def test_cli_prints_the_timeline_as_a_table() -> None:
    result = runner.invoke(app, ["scaling", "simulate", "--minutes", "20"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "endpoint/dog-breed-classifier/variant/AllTraffic" in out
    assert "scale out 1->4" in out
    assert "Successful: 4 serving" in out
    assert "ALARM" in out


def test_cli_json_is_the_timeline_and_the_activities(tmp_path: Path) -> None:
    csv_path = tmp_path / "load.csv"
    csv_path.write_text("\n".join(["35"] * 3 + ["300"] * 12))
    result = runner.invoke(app, ["scaling", "simulate", "--csv", str(csv_path), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["policy"]["target_value"] == 70
    assert document["scalable_target"]["max_capacity"] == 4
    assert len(document["minutes"]) == 15
    assert document["minutes"][5]["alarm_high"] == "ALARM"
    scaled = [a for a in document["activities"] if "NotScaledReasons" not in a]
    # Out at 6:00 (AlarmHigh on minutes 3-5), serving 5 minutes later; the run starts at epoch.
    assert [(a["Description"], a["StartTime"], a["EndTime"]) for a in scaled] == [
        (
            "Setting desired instance count to 4.",
            "1970-01-01T00:06:00+00:00",
            "1970-01-01T00:11:00+00:00",
        )
    ]
    high, low = document["alarms"]
    prefix = "TargetTracking-endpoint/dog-breed-classifier/variant/AllTraffic-Alarm"
    assert high.startswith(prefix + "High-") and low.startswith(prefix + "Low-")


def test_cli_flags_override_the_tfvars() -> None:
    flags = ["--max", "2", "--target", "100", "--scale-in-cooldown", "0"]
    result = runner.invoke(app, ["scaling", "simulate", "--json", *flags])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["scalable_target"]["max_capacity"] == 2
    assert document["policy"]["target_value"] == 100
    assert document["policy"]["scale_in_cooldown"] == 0
    assert max(m["desired_instances"] for m in document["minutes"]) == 2


def test_cli_writes_a_png(tmp_path: Path) -> None:
    png = tmp_path / "timeline.png"
    result = runner.invoke(app, ["scaling", "simulate", "--profile", "spike", "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert f"chart written to {png}" in result.stdout.replace("\n", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min", "5"], "min capacity 5 exceeds max capacity 4"),
        (["--target", "0"], "target value must be > 0"),
        (["--scale-out-cooldown", "-1"], "scale-out-cooldown must be >= 0"),
        (["--minutes", "0"], "minutes must be >= 1"),
    ],
)
def test_cli_refuses_bad_policy_flags_with_exit_2(tmp_path: Path, args, message: str) -> None:
    png = tmp_path / "timeline.png"
    result = runner.invoke(app, ["scaling", "simulate", "--png", str(png), *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert not png.exists()


def test_cli_refuses_a_bad_csv_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    csv_path = tmp_path / "load.csv"
    csv_path.write_text("requests\n10\n-3\n")
    png = tmp_path / "timeline.png"
    result = runner.invoke(
        app, ["scaling", "simulate", "--csv", str(csv_path), "--png", str(png), "--json"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "load.csv:3: requests per minute must be a finite number >= 0" in result.stderr
    assert result.stdout == ""
    assert not png.exists()
