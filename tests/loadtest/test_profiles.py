"""The load profiles, over policy seconds."""

from __future__ import annotations

import pytest

from loadtest.headless import phases_for
from loadtest.profiles import Profile
from ops.errors import OpsError


def users(profile: Profile, every: float = 30.0) -> list[int | None]:
    return [profile.users_at(t * every) for t in range(round(profile.duration / every) + 1)]


def test_spike_jumps_to_the_peak_for_the_hold_then_back_to_base():
    spike = Profile("spike", base_users=1, peak_users=5, warmup=60, hold=120, tail=90)
    assert users(spike) == [1, 1, 5, 5, 5, 5, 1, 1, 1, None]


def test_step_climbs_equal_stairs_to_the_peak():
    step = Profile("step", base_users=2, peak_users=8, warmup=0, hold=90, tail=30, steps=3)
    assert users(step) == [4, 6, 8, 2, None]


def test_ramp_rises_to_the_peak_at_the_middle_and_falls_back():
    ramp = Profile("ramp", base_users=0, peak_users=10, warmup=0, hold=100, tail=0)
    assert [ramp.users_at(t) for t in (0, 25, 50, 75, 99.9)] == [0, 5, 10, 5, 0]
    assert ramp.users_at(100) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"shape": "sawtooth"},
        {"base_users": 6},
        {"peak_users": 0, "base_users": 0},
        {"hold": 0},
        {"tail": -1},
        {"steps": 0},
    ],
)
def test_nonsense_is_refused(bad):
    settings = {"shape": "step", "base_users": 1, "peak_users": 5, "warmup": 0, "hold": 60,
                "tail": 0} | bad  # fmt: skip
    with pytest.raises(ValueError):
        Profile(**settings)


def test_a_duration_keeps_the_phases_proportions():
    # [tool.locust]: 120 s warm-up, 600 s hold, 1500 s tail.
    assert phases_for(1110, {}) == {"warmup": 60.0, "hold": 300.0, "tail": 750.0}
    assert phases_for(100, {"warmup": 0, "hold": 50}) == {"warmup": 0.0, "hold": 3.2, "tail": 96.8}
    with pytest.raises(OpsError):
        phases_for(0, {})
