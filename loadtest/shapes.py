"""The `LoadTestShape` that runs the profile chosen by ``--shape`` (loadtest/profiles.py).

Profiles are declared in policy seconds, the clock the scaling policy is declared in: the shape
divides them by the time scale the options resolved to (``--time-scale``, else on ``--target
local`` the local cloud's own ``ops local up --time-scale N``, else 1), so the same profile
exercises the same alarms and cooldowns on both. Locust runs the first
concrete shape class it finds in a locustfile, so there is one.
"""

from __future__ import annotations

from locust import LoadTestShape

from loadtest.hooks import settings_for
from loadtest.profiles import Profile, profile_from_options


class ScalingShape(LoadTestShape):
    """The profile named by ``--shape``, built from the options when the test starts."""

    def __init__(self) -> None:
        super().__init__()
        self._profile: Profile | None = None
        self._time_scale = 1.0

    def reset_time(self) -> None:
        super().reset_time()
        self._profile = None  # a new test (web UI) reads the options again

    def tick(self) -> tuple[int, float] | None:
        if self._profile is None:
            environment = self.runner.environment
            settings = settings_for(environment)
            if settings is None:
                return None  # the options were refused: no load
            self._profile = profile_from_options(environment.parsed_options)
            # The resolved one: --time-scale, else the local cloud's own (loadtest/options.py).
            self._time_scale = settings.time_scale
        users = self._profile.users_at(self.get_run_time() * self._time_scale)
        if users is None:
            return None
        # Each change completes within about a second (boto3 clients take a while to build).
        return users, float(max(self._profile.peak_users, 1))
