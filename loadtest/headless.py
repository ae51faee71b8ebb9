"""Run the locustfile headless in a child process and collect what it wrote (`ops loadtest`).

A child process, not Locust's library API in ours: importing Locust monkey-patches the whole
process with gevent (threads become greenlets), and its `main()` owns signal handlers and exits
the process; as a child it runs exactly the command a user would type, reads the same
``[tool.locust]`` (it runs in the checkout), and its exit code is the verdict's.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loadtest.report import Outputs, outputs_for
from loadtest.verdict import Verdict
from ops.errors import OpsError

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "loadtest" / "lambda.py"
PHASES = ("warmup", "hold", "tail")


@dataclass(frozen=True)
class Result:
    command: list[str]
    exit_code: int
    verdict: Verdict | None  # None: the run wrote none (refused options, a crash)
    outputs: Outputs
    locust_csv_prefix: Path
    html: Path

    def to_json(self) -> dict:
        return {
            "passed": self.verdict.passed if self.verdict is not None else False,
            "exit_code": self.exit_code,
            "command": shlex.join(self.command),
            "verdict": self.verdict.to_json() if self.verdict is not None else None,
            "outputs": report_files(self.locust_csv_prefix),
        }


def report_files(prefix: str | Path) -> dict[str, str]:
    """Every file a run with reports under `prefix` writes (`run` gives Locust `prefix` as its
    ``--csv`` prefix and ``prefix.html``): the load test's own and Locust's."""
    return {
        **outputs_for(prefix).to_json(),
        "html": f"{prefix}.html",
        "locust_stats_csv": f"{prefix}_stats.csv",
        "locust_history_csv": f"{prefix}_stats_history.csv",
        "locust_failures_csv": f"{prefix}_failures.csv",
    }


def project_defaults(pyproject: Path = REPO / "pyproject.toml") -> dict:
    """The ``[tool.locust]`` section the child reads."""
    try:
        return tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["locust"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise OpsError(f"cannot read [tool.locust] from {pyproject}: {exc}") from exc


def phases_for(duration: float, given: dict[str, float | None]) -> dict[str, float]:
    """Warm-up, hold and tail that add up to `duration` policy seconds, in the proportions of
    the given ones (each unset one taken from ``[tool.locust]``)."""
    defaults = project_defaults()
    chosen = {p: float(given.get(p) if given.get(p) is not None else defaults[p]) for p in PHASES}
    total = sum(chosen.values())
    if not duration > 0 or total <= 0:
        raise OpsError(f"the duration must be > 0 seconds, not {duration}")
    return {phase: round(value * duration / total, 1) for phase, value in chosen.items()}


def default_prefix(root: Path = REPO / "runs" / "loadtest") -> Path:
    """``root/<UTC time>/lambda``: `ops loadtest`'s (and, under runs/pipeline, `ops
    pipeline`'s) reports when not told where."""
    return root / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") / "lambda"


def run(options: dict[str, object], prefix: Path, extra: list[str] = (), env=None,
        stdout=None) -> Result:  # fmt: skip
    """``locust -f loadtest/lambda.py --headless`` with `options` (name -> value; None left
    out, True a bare flag) and then `extra` as they are, reports under `prefix`; Locust's
    output to `stdout`."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--csv", str(prefix), "--html", f"{prefix}.html", "--quiet-verdict",
    ]  # fmt: skip
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        command += [flag] if value is True else [flag, str(value)]
    command += list(extra)
    outputs = outputs_for(prefix)
    outputs.verdict_json.unlink(missing_ok=True)  # a verdict left by an earlier run is not ours
    if stdout is None or _has_fileno(stdout):
        completed = subprocess.run(command, cwd=REPO, env=env, stdout=stdout, check=False)
    else:  # a stream in memory (a test's): pass the output on once the run is over
        completed = subprocess.run(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, check=False
        )
        stdout.write(completed.stdout)
    verdict = None
    if outputs.verdict_json.exists():
        verdict = Verdict.from_json(json.loads(outputs.verdict_json.read_text(encoding="utf-8")))
    return Result(
        command=command,
        exit_code=completed.returncode,
        verdict=verdict,
        outputs=outputs,
        locust_csv_prefix=prefix,
        html=Path(f"{prefix}.html"),
    )


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False
    return True
