"""Clocks in policy seconds: the time the scaling policy's own numbers are declared in.

A 60-second metric period and a 300-second cooldown are policy seconds. `RealClock` lets them
pass `time_scale` times faster than wall seconds (the local cloud's `--time-scale 20` runs a
period in 3 wall seconds) while the policy's declared numbers stay as written; `ManualClock`
moves only when told to, for the simulator and the tests.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Policy seconds since the Unix epoch (or since the clock's chosen start)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` policy seconds."""
        ...


class RealClock:
    """Wall time, compressed: each wall second counts as `time_scale` policy seconds.

    `now()` starts at the wall time of creation, so with `time_scale=1` it is plain Unix
    time and activities carry real timestamps; later it runs ahead of the wall clock.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, not {time_scale}")
        self.time_scale = time_scale
        self._origin = time.time()
        self._started = time.monotonic()  # elapsed time from a clock that never jumps

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._started) * self.time_scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.time_scale)


class ManualClock:
    """A clock that stands still until `advance` (or `sleep`) moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Sleeping on a manual clock moves it: code written against `Clock` runs at once."""
        self.advance(max(seconds, 0.0))
