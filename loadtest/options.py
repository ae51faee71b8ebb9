"""The load test's options, registered with Locust's own parser, and what they resolve to.

Defaults for the load itself live in ``[tool.locust]`` of pyproject.toml (Locust reads that
section); the function, the endpoint and the scaling policy default to what Terraform declares
(ops.config reads terraform/), so the verdict checks the policy as written, not a copy of it.
Every number the verdict expects can be overridden on the command line.

``--target`` chooses defaults only: ``local`` uses the running local cloud when boto3 has no
endpoint setting yet (``AWS_ENDPOINT_URL``), runs at that cloud's own time scale unless
``--time-scale`` is given, and reads CloudWatch soon after the run; ``aws`` runs at scale 1 and
waits for CloudWatch's late datapoints. The calls are the same on both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loadtest.payloads import PAYLOADS
from loadtest.profiles import SHAPES, Profile, profile_from_options
from loadtest.timeline import POLICY_MINUTE
from loadtest.verdict import Expectations, declared

TARGETS = ("local", "aws")
LOAD_OPTIONS = ("shape", "base_users", "peak_users", "rate", "warmup", "hold", "tail", "steps")
DEFAULT_REPORT_PREFIX = "runs/loadtest/lambda"
# CloudWatch publishes a minute's Lambda and SageMaker datapoints a minute or more late.
AWS_METRICS_WAIT_S = 150.0
LOCAL_METRICS_WAIT_S = 2.0  # the local cloud puts its metrics once a second


class OptionError(ValueError):
    """An option value that makes no sense (said before the test starts)."""


def add_arguments(parser) -> None:
    """Listener of ``events.init_command_line_parser``."""
    add = parser.add_argument
    add("--target", choices=TARGETS, default="local", help="Where the function runs.")
    add("--function-name", default="", help="Function to invoke [default: Terraform's].")
    add(
        "--qualifier",
        default=None,
        help="Alias or version to invoke [default: Terraform's alias]; '' for $LATEST.",
    )
    add("--endpoint-name", default="", help="Endpoint to watch [default: Terraform's].")
    add("--variant-name", default="", help="Production variant [default: Terraform's].")
    add("--no-endpoint", action="store_true", help="Watch the function only.")
    # The load: pyproject's [tool.locust] holds the project's defaults (from the checkout).
    add("--shape", choices=SHAPES, default=None, help="Load profile.")
    add("--base-users", type=int, default=None, help="Users before and after the hold.")
    add("--peak-users", type=int, default=None, help="Users at the peak.")
    add(
        "--rate",
        type=float,
        default=None,
        help="Requests per policy second per user (x --time-scale per wall second); 0: back "
        "to back.",
    )
    add("--warmup", type=float, default=None, help="Policy seconds at base before the hold.")
    add("--hold", type=float, default=None, help="Policy seconds of the load.")
    add("--tail", type=float, default=None, help="Policy seconds at base after the hold.")
    add("--steps", type=int, default=None, help="Stairs of the step shape.")
    add(
        "--time-scale",
        type=float,
        default=None,
        help="Policy seconds per wall second [default: the local cloud's own --time-scale with "
        "--target local, 1 on AWS].",
    )
    add("--payload", choices=PAYLOADS, default="image", help="Image body or {'url'} request.")
    add("--image-url", default="", help="Image URL for --payload url [default: a loopback one].")
    add("--image-file", default="", help="JPEG to send [default: ops.synth's sample].")
    add(
        "--watch-interval",
        type=float,
        default=0.0,
        help="Row seconds, whole (a multiple of 60 on AWS) [default: a policy minute].",
    )
    add("--metrics-wait", type=float, default=-1.0, help="Seconds before reading CloudWatch.")
    add("--report-prefix", default="", help="Report files' prefix [default: the --csv prefix].")
    add(
        "--quiet-verdict",
        action="store_true",
        include_in_web_ui=False,
        help="Write the verdict without printing its table (ops loadtest prints it).",
    )
    # The verdict's expectations: the declared policy unless given.
    add("--min-capacity", type=int, default=None, help="Endpoint MinCapacity.")
    add("--max-capacity", type=int, default=None, help="Endpoint MaxCapacity.")
    add("--target-value", type=float, default=None, help="Invocations/instance/minute.")
    add("--scale-out-cooldown", type=float, default=None, help="Policy seconds.")
    add("--scale-in-cooldown", type=float, default=None, help="Policy seconds.")
    add("--reserved-concurrency", type=int, default=None, help="Function's reserved limit.")
    add("--expect-instances", type=int, default=None, help="N: scale out to at least N.")
    add("--expect-within", type=float, default=None, help="T: policy s to reach N.")
    add("--expect-scale-in-to", type=int, default=None, help="Back to at most this many.")
    add("--max-error-ratio", type=float, default=None, help="Errors / requests must stay below.")
    add("--max-p95-ms", type=float, default=None, help="p95 of successes must stay below.")


@dataclass(frozen=True)
class Settings:
    target: str
    function_name: str
    qualifier: str | None
    endpoint_name: str | None
    variant_name: str
    profile: Profile
    rate: float  # requests per wall second per user (0: back to back)
    time_scale: float
    interval: int  # wall seconds per timeline row, and the metric period (`row_interval`)
    metrics_wait: float
    payload: str
    image_url: str
    image_file: str
    report_prefix: str
    print_verdict: bool
    expectations: Expectations


def resolve(options) -> Settings:
    """The options with Terraform's declarations filled in; `OptionError` if they conflict."""
    from ops import config

    missing = [
        f"--{name.replace('_', '-')}" for name in LOAD_OPTIONS if getattr(options, name) is None
    ]
    if missing:
        raise OptionError(
            f"{', '.join(missing)} not set: pyproject.toml's [tool.locust] sets them when "
            "locust runs from the checkout"
        )
    try:
        profile = profile_from_options(options)
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    time_scale = resolve_time_scale(options.target, options.time_scale)
    if not time_scale > 0:
        raise OptionError(f"--time-scale must be > 0, not {time_scale}")
    if options.payload == "url" and options.target == "aws" and not options.image_url:
        raise OptionError("--payload url on AWS needs --image-url (the function cannot reach us)")
    function = config.lambda_settings()
    endpoint = config.endpoint_settings()
    interval = row_interval(options.target, time_scale, float(options.watch_interval))
    metrics_wait = float(options.metrics_wait)
    if metrics_wait < 0:
        metrics_wait = AWS_METRICS_WAIT_S if options.target == "aws" else LOCAL_METRICS_WAIT_S
    qualifier = function.alias_name if options.qualifier is None else options.qualifier
    expectations = declared(
        min_capacity=_given(options.min_capacity, endpoint.min_capacity),
        max_capacity=_given(options.max_capacity, endpoint.max_capacity),
        target_per_instance=_given(options.target_value, endpoint.target_invocations_per_instance),
        scale_out_cooldown=_given(options.scale_out_cooldown, endpoint.scale_out_cooldown),
        scale_in_cooldown=_given(options.scale_in_cooldown, endpoint.scale_in_cooldown),
        disable_scale_in=endpoint.disable_scale_in,
        reserved_concurrency=_given(options.reserved_concurrency, function.reserved_concurrency),
        scale_out_to=options.expect_instances,
        scale_out_within=options.expect_within,
        scale_in_to=options.expect_scale_in_to,
        max_error_ratio=options.max_error_ratio,
        max_p95_ms=options.max_p95_ms,
    )
    return Settings(
        target=options.target,
        function_name=options.function_name or function.function_name,
        qualifier=qualifier or None,
        endpoint_name=None
        if options.no_endpoint
        else (options.endpoint_name or function.endpoint_name),
        variant_name=options.variant_name or endpoint.variant_name,
        profile=profile,
        rate=float(options.rate) * time_scale,
        time_scale=time_scale,
        interval=interval,
        metrics_wait=metrics_wait,
        payload=options.payload,
        image_url=options.image_url,
        image_file=options.image_file,
        report_prefix=report_prefix(options),
        print_verdict=not options.quiet_verdict,
        expectations=expectations,
    )


def resolve_time_scale(target: str, given: float | None) -> float:
    """`given`, else on ``local`` the local cloud's own time scale (its health check says it),
    else 1: a local cloud started with ``--time-scale 10`` runs its policy clock 10 times
    faster, and a load paced at scale 1 against it would last 10 times too long."""
    if given is not None:
        return float(given)
    return local_time_scale() if target == "local" else 1.0


def local_time_scale() -> float:
    """The time scale of the local cloud boto3 talks to: the one ``AWS_ENDPOINT_URL`` names,
    else the running one (``ops local up``); 1 when none answers (the run then says what is
    missing)."""
    from ops.localcloud import control

    url = os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        state = control.running()
        if state is None:
            return 1.0
        url = state.url
    info = control.health(url) or {}
    return float(info.get("time_scale") or 1.0)


def row_interval(target: str, time_scale: float, given: float = 0.0) -> int:
    """Wall seconds per timeline row, which is also the CloudWatch period the watch reads
    metrics in (GetMetricData buckets from its StartTime in whole-second periods): `given`, or
    one policy minute, in whole seconds (at least 1); on AWS a multiple of 60, as periods of
    standard-resolution metrics (Lambda's, SageMaker's) must be
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricStat.html)."""
    seconds = given if given > 0 else POLICY_MINUTE / time_scale
    if target == "aws":
        return max(1, round(seconds / 60)) * 60
    return max(1, round(seconds))


def _given(value, default):
    return default if value is None else value


def report_prefix(options) -> str:
    if options.report_prefix:
        return options.report_prefix
    if getattr(options, "csv_prefix", None):
        return options.csv_prefix
    html = getattr(options, "html_file", None)
    if html:
        return str(Path(html).with_suffix(""))
    return DEFAULT_REPORT_PREFIX


def target_environment(target: str) -> dict[str, str]:
    """Variables boto3 needs for `target` that the environment lacks: for ``local`` without an
    endpoint setting, the running local cloud's (what `ops local env` prints)."""
    if target != "local" or os.environ.get("AWS_ENDPOINT_URL"):
        return {}
    from ops.localcloud.control import client_environment, require_running

    return client_environment(require_running().url)
