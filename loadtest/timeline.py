"""What one load test recorded, row by row: the data the verdict judges and the report draws.

A `Timeline` is plain data (dataclasses of numbers and strings), written as JSON beside
Locust's reports, so a run can be judged again later (`verdict.judge`) and tests can judge
recorded or hand-made timelines without running anything.

Times. A row's ``t`` is wall seconds since the test started, and each row covers the
``interval`` wall seconds before it. Scaling activities keep the times Application Auto Scaling
gave them (``StartTime``/``EndTime`` as Unix seconds): on AWS those are wall time; the local
cloud's run on its policy clock, ``time_scale`` times faster than the wall clock
(ops/scaling/clock.py). Only differences between activity times are used, and those are policy
seconds on both, which is what cooldowns are declared in. ``seen_at`` is the row time at which
the watch first saw an activity.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

POLICY_MINUTE = 60.0  # seconds of the policy clock in one metric period


@dataclass(frozen=True)
class Row:
    """One interval of the run: what the load generator did and what AWS reported for it."""

    t: float  # end of the row: wall seconds since the test started
    interval: float  # wall seconds the row covers
    users: int  # Locust users at the row's end
    requests: int  # invocations that finished in the row (every outcome)
    successes: int  # the function answered statusCode 200
    throttles: int  # 429 TooManyRequestsException
    function_errors: int  # X-Amz-Function-Error: the function raised or timed out
    handler_errors: int  # the handler answered a statusCode other than 200
    other_errors: int  # anything else (connection errors, other AWS errors)
    p95_ms: float | None = None  # of the row's successful invocations
    in_flight_max: int = 0  # most of our invocations in flight at once during the row
    # The fewest of our other invocations in flight when a throttle came back: the function
    # was at its concurrency limit then, so this is at least the limit unless Lambda
    # throttled below it. None: no throttle in the row.
    throttled_at_in_flight: int | None = None
    desired: int | None = None  # the variant's DesiredInstanceCount at the row's end
    current: int | None = None  # the variant's CurrentInstanceCount at the row's end
    # CloudWatch, for the row's period (None: no datapoint, or not read).
    endpoint_invocations: float | None = None  # AWS/SageMaker Invocations, Sum
    lambda_invocations: float | None = None  # AWS/Lambda Invocations, Sum
    lambda_throttles: float | None = None  # AWS/Lambda Throttles, Sum
    lambda_errors: float | None = None  # AWS/Lambda Errors, Sum
    lambda_concurrent: float | None = None  # AWS/Lambda ConcurrentExecutions, Maximum

    @property
    def errors(self) -> int:
        return self.function_errors + self.handler_errors + self.other_errors

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.interval if self.interval > 0 else 0.0

    @property
    def endpoint_load(self) -> float:
        """Invocations the endpoint served in the row: CloudWatch's count when there is one,
        else the function's successful answers (each is one endpoint invocation)."""
        if self.endpoint_invocations is not None:
            return self.endpoint_invocations
        return float(self.successes)


@dataclass(frozen=True)
class ScalingActivity:
    """One DescribeScalingActivities entry (not-scaled ones are left out)."""

    activity_id: str
    description: str
    status: str  # InProgress | Successful | Failed (and the rest of AWS's StatusCode values)
    desired: int | None  # from "Setting desired instance count to N."
    start: float  # StartTime, Unix seconds (the policy clock's on a time-scaled local cloud)
    end: float | None  # EndTime
    seen_at: float  # the row time at which the watch first saw it
    cause: str = ""


@dataclass(frozen=True)
class Totals:
    requests: int
    successes: int
    throttles: int
    function_errors: int
    handler_errors: int
    other_errors: int
    p95_ms: float | None  # of all successful invocations

    @property
    def errors(self) -> int:
        return self.function_errors + self.handler_errors + self.other_errors


@dataclass
class Timeline:
    function: str  # name[:qualifier]
    endpoint: str | None  # endpoint/variant watched, None if none
    started_at: float  # Unix seconds (wall) when the test started
    time_scale: float  # policy seconds per wall second (1 on AWS)
    rows: list[Row] = field(default_factory=list)
    activities: list[ScalingActivity] = field(default_factory=list)
    totals: Totals | None = None

    @property
    def period(self) -> float:
        """Wall seconds in one policy minute (a metric period)."""
        return POLICY_MINUTE / self.time_scale

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict) -> Timeline:
        totals = document.get("totals")
        return cls(
            function=document["function"],
            endpoint=document.get("endpoint"),
            started_at=float(document["started_at"]),
            time_scale=float(document["time_scale"]),
            rows=[Row(**row) for row in document.get("rows", [])],
            activities=[ScalingActivity(**a) for a in document.get("activities", [])],
            totals=Totals(**totals) if totals else None,
        )

    @classmethod
    def load(cls, path: Path) -> Timeline:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def write_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    def write_csv(self, path: Path) -> None:
        """One line per row, columns as `Row`'s fields, then the activities first seen in it."""
        names = [f.name for f in fields(Row)]
        with Path(path).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*names, "activities"])
            for row in self.rows:
                seen = [
                    f"{a.description} ({a.status})"
                    for a in self.activities
                    if math.isclose(a.seen_at, row.t)
                ]
                values = ["" if getattr(row, n) is None else getattr(row, n) for n in names]
                writer.writerow([*values, "; ".join(seen)])
