"""The whole pipeline on the local cloud, one stage after another, as a user would type it:

1. ``ops local up --detach --time-scale N --wait-provisioned``: the local cloud, bootstrapped
   from terraform/ (bucket, roles, the Lambda function with reserved and provisioned
   concurrency), with the scaling clock N times faster so the mission's cooldowns fit in
   minutes; a cloud already running is used if its time scale is N;
2. ``ops data synth``: a small synthetic data set in the dogImages layout;
3. ``ops train``: a 2-trial tuning job, then training with the best values;
4. ``ops promote-endpoint``: the model on the autoscaled endpoint;
5. ``ops loadtest``: Locust drives the Lambda function until the endpoint scales out and back
   in, then the verdict and the report.

Each stage runs as its own ``ops`` process with its own progress on the terminal; a stage that
fails stops the pipeline and says which, with the command that runs it again. The local cloud
stays up afterwards, the endpoint serving.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ops.config import REPO
from ops.errors import OpsError
from ops.localcloud import control

DEFAULT_TIME_SCALE = 10.0
DEFAULT_DATA = REPO / "data" / "synth"
LOAD_TEST = "load test"


@dataclass
class Stage:
    name: str
    args: list[str]  # after `ops`
    seconds: float | None = None
    exit_code: int | None = None

    @property
    def command(self) -> str:
        return shlex.join(["ops", *self.args])

    def to_json(self) -> dict:
        return {
            "stage": self.name,
            "command": self.command,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "exit_code": self.exit_code,
        }


@dataclass
class Plan:
    time_scale: float = DEFAULT_TIME_SCALE
    data: Path = DEFAULT_DATA
    report_prefix: Path = field(default_factory=lambda: _default_prefix())
    train_args: list[str] = field(default_factory=list)
    loadtest_args: list[str] = field(default_factory=list)

    def stages(self) -> list[Stage]:
        scale = f"{self.time_scale:g}"
        return [
            Stage(
                "local cloud",
                ["local", "up", "--detach", "--time-scale", scale, "--wait-provisioned"],
            ),
            Stage("data", ["data", "synth", str(self.data), "--classes", "5", "--per-class", "24"]),
            Stage("train", ["train", "--data", str(self.data), *self.train_args]),
            Stage("promote", ["promote-endpoint"]),
            Stage(
                LOAD_TEST,
                [
                    "loadtest",
                    "--time-scale",
                    scale,
                    "--out",
                    str(self.report_prefix),
                    *(["--", *self.loadtest_args] if self.loadtest_args else []),
                ],
            ),
        ]


@dataclass
class Outcome:
    stages: list[Stage]
    verdict: dict | None
    outputs: dict[str, str]
    url: str | None

    @property
    def passed(self) -> bool:
        return all(s.exit_code == 0 for s in self.stages) and bool(
            self.verdict and self.verdict.get("passed")
        )

    @property
    def stopped_at(self) -> Stage | None:
        """The first stage that failed, unless it is the load test and its verdict says why."""
        for stage in self.stages:
            if stage.exit_code:
                return None if stage.name == LOAD_TEST and self.verdict is not None else stage
        return None

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "stopped_at": self.stopped_at.name if self.stopped_at is not None else None,
            "stages": [s.to_json() for s in self.stages],
            "seconds": round(sum(s.seconds or 0 for s in self.stages), 1),
            "verdict": self.verdict,
            "outputs": self.outputs,
            "local_cloud": self.url,
        }


def check_time_scale(wanted: float) -> None:
    """A local cloud already running must run at ``wanted``: the load test paces itself by it."""
    state = control.running()
    if state is None:
        return
    running = control.time_scale(state)
    if running != wanted:
        raise OpsError(
            f"the local cloud at {state.url} runs at time scale {running:g}, not {wanted:g}: "
            f"stop it (`ops local down`) or pass --time-scale {running:g}"
        )


def run(plan: Plan, announce: Callable[[int, int, Stage], None], output=None) -> Outcome:
    """Run the stages in order (each stage's own output to ``output``: the terminal, or stderr
    under --json); stop at the first that fails."""
    from loadtest.headless import report_files

    check_time_scale(plan.time_scale)
    outputs = report_files(plan.report_prefix)
    verdict_json = Path(outputs["verdict_json"])
    stages = plan.stages()
    for index, stage in enumerate(stages, 1):
        announce(index, len(stages), stage)
        if stage.name == LOAD_TEST:
            verdict_json.unlink(missing_ok=True)  # one an earlier run left there is not ours
        started = time.monotonic()
        command = [sys.executable, "-m", "ops.cli", *stage.args]
        done = subprocess.run(command, stdout=output, check=False)
        stage.seconds = time.monotonic() - started
        stage.exit_code = done.returncode
        # The load test's exit code is its verdict's: the report is there either way.
        if done.returncode != 0 and stage.name != LOAD_TEST:
            break
    # Only this run's load test wrote a verdict: with an earlier stage failed, a file at the
    # prefix is an earlier run's (`--out` at an existing prefix).
    verdict = None
    load_tested = any(s.name == LOAD_TEST and s.exit_code is not None for s in stages)
    if load_tested and verdict_json.exists():
        verdict = json.loads(verdict_json.read_text(encoding="utf-8"))
    state = control.running()
    return Outcome(
        [s for s in stages if s.exit_code is not None],
        verdict,
        outputs,
        state.url if state else None,
    )


def _default_prefix() -> Path:
    from loadtest.headless import default_prefix

    return default_prefix(REPO / "runs" / "pipeline")
