"""Load profiles over time: how many users, when. Pure (no Locust), so the tests and the
option checks use them without gevent's monkey-patching, which importing Locust does.

Every profile has three phases: ``warmup`` at ``base_users`` (the endpoint settles at its
minimum), ``hold`` in which the load rises to ``peak_users``, and ``tail`` back at
``base_users`` (long enough for the endpoint to scale back in). Durations are policy seconds,
the clock the scaling policy is declared in (loadtest/shapes.py divides them by the time
scale). Users are literal.

- step: a staircase of ``steps`` equal stairs from base to peak across the hold (each stair a
  larger load, which is what lets a scale-out proceed during the scale-out cooldown);
- spike: the whole peak at once for the hold;
- ramp: linearly from base up to peak at the middle of the hold and back down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHAPES = ("step", "spike", "ramp")


@dataclass(frozen=True)
class Profile:
    shape: str
    base_users: int
    peak_users: int
    warmup: float  # policy seconds
    hold: float
    tail: float
    steps: int = 3

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; use one of {', '.join(SHAPES)}")
        if not 0 <= self.base_users <= self.peak_users or self.peak_users < 1:
            raise ValueError(
                f"need 0 <= base users ({self.base_users}) <= peak users ({self.peak_users}), "
                "and a peak of at least 1"
            )
        if min(self.warmup, self.tail) < 0 or self.hold <= 0:
            raise ValueError("warmup and tail must be >= 0 seconds, hold > 0")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, not {self.steps}")

    @property
    def duration(self) -> float:
        return self.warmup + self.hold + self.tail

    def users_at(self, t: float) -> int | None:
        """Users wanted `t` policy seconds into the test; None once the profile is over."""
        if t < 0 or t >= self.duration:
            return None
        into = t - self.warmup
        if into < 0 or into >= self.hold:
            return self.base_users
        rise = self.peak_users - self.base_users
        if self.shape == "spike":
            return self.peak_users
        if self.shape == "step":
            stair = min(math.floor(into / (self.hold / self.steps)), self.steps - 1)
            return self.base_users + round(rise * (stair + 1) / self.steps)
        middle = self.hold / 2
        return self.base_users + round(rise * (1 - abs(into - middle) / middle))


def profile_from_options(options) -> Profile:
    return Profile(
        shape=options.shape,
        base_users=int(options.base_users),
        peak_users=int(options.peak_users),
        warmup=float(options.warmup),
        hold=float(options.hold),
        tail=float(options.tail),
        steps=int(options.steps),
    )
