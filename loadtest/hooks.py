"""Locust event listeners that turn a locustfile into the scaling load test.

`install(events)` registers the options and, per process, a `LoadTest` that:

- at ``init``: resolves the options (Terraform's declarations filled in), for ``--target
  local`` points boto3 at the running local cloud unless it is already pointed, and prepares
  the payload (and the loopback image server for ``{"url"}`` requests without
  ``--image-url``): before the shape's clock starts, as making the default JPEG takes seconds;
- at ``test_start``: aims the users at the function and, on the process that runs the test
  (not a distributed worker), starts the `ScalingWatch`;
- at ``test_stop``: stops the watch, judges the timeline, prints the verdict table, writes the
  report files beside Locust's and sets ``environment.process_exit_code``: 0 when the verdict
  passed (throttles are failures in Locust's statistics, and expected past the reserved
  limit), 1 when it failed;
- at ``quitting``: stops the image server.

Options that make no sense stop the run before any user starts (exit code 2).

The watch counts the invocations of its own process: run Locust as one process (one process
drives a few hundred users); with distributed workers the timeline would miss theirs.
"""

from __future__ import annotations

import logging
import os
import weakref

import boto3
from locust.runners import WorkerRunner

from loadtest import report
from loadtest.client import InvokeSpec, aim
from loadtest.options import OptionError, Settings, add_arguments, resolve, target_environment
from loadtest.payloads import ImageServer, image_event, sample_jpeg, url_event
from loadtest.verdict import Verdict, judge
from loadtest.watch import Recorder, ScalingWatch, Watched
from ops.errors import OpsError

log = logging.getLogger("loadtest")
# Locust logs at INFO; botocore would add a line per client ("Found endpoint for lambda via
# environment_global") and bury the progress lines.
logging.getLogger("botocore").setLevel(logging.WARNING)


# Each Locust environment's resolved settings, for the shape (loadtest/shapes.py).
_SETTINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def settings_for(environment) -> Settings | None:
    """The settings the options resolved to at ``init`` (None: refused)."""
    return _SETTINGS.get(environment)


def install(events) -> None:
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(_on_init)


def _on_init(environment, **_) -> None:
    LoadTest(environment)  # kept alive by the listeners it registers


class LoadTest:
    def __init__(self, environment) -> None:
        self.environment = environment
        self.settings: Settings | None = None
        self.image_server: ImageServer | None = None
        self.watch: ScalingWatch | None = None
        self.recorder: Recorder | None = None
        self.verdict: Verdict | None = None
        self.spec: InvokeSpec | None = None
        try:
            self.settings = resolve(environment.parsed_options)
            _SETTINGS[environment] = self.settings
            os.environ.update(target_environment(self.settings.target))
            # Now, before the shape's clock starts: the default JPEG takes seconds to make.
            self.spec = self._invoke_spec(self.settings)
        except (OptionError, OpsError, OSError) as exc:
            self._refuse(exc)
            return
        events = environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)

    def _refuse(self, exc: Exception) -> None:
        log.error("load test not started: %s", exc)
        self.environment.process_exit_code = 2
        runner = self.environment.runner
        if runner is not None:
            runner.quit()

    def _invoke_spec(self, settings: Settings) -> InvokeSpec:
        if settings.payload == "url":
            url = settings.image_url
            if not url:
                jpeg = sample_jpeg(settings.image_file or None)
                self.image_server = ImageServer(jpeg).start()
                url = self.image_server.url
            payload = url_event(url)
        else:
            payload = image_event(sample_jpeg(settings.image_file or None))
        return InvokeSpec(
            function_name=settings.function_name,
            qualifier=settings.qualifier,
            payload=payload,
            payload_name=f"{settings.payload} ({len(payload)} B)",
            rate=settings.rate,
        )

    def on_test_start(self, environment, **_) -> None:
        settings, spec = self.settings, self.spec
        assert settings is not None and spec is not None
        aim(environment, spec)
        if isinstance(environment.runner, WorkerRunner):
            return
        self.recorder = Recorder()
        environment.events.request.add_listener(self.recorder.on_request)
        watched = Watched(
            function_name=settings.function_name,
            qualifier=settings.qualifier,
            endpoint_name=settings.endpoint_name,
            variant_name=settings.variant_name,
            interval=settings.interval,
            time_scale=settings.time_scale,
        )
        runner = environment.runner
        self.watch = ScalingWatch(
            watched, self.recorder, boto3.Session(), users=lambda: runner.user_count
        ).start()
        log.info(
            "invoking %s with %s; watching %s every %g s",
            spec.function,
            spec.payload_name,
            watched.resource_id if watched.endpoint_name else "the function only",
            watched.interval,
        )

    def on_test_stop(self, environment, **_) -> None:
        if self.watch is None or self.settings is None:
            return
        watch, self.watch = self.watch, None
        if self.recorder is not None:
            environment.events.request.remove_listener(self.recorder.on_request)
        timeline = watch.stop(self.settings.metrics_wait)
        expect = self.settings.expectations
        self.verdict = judge(timeline, expect)
        outputs = report.write(self.settings.report_prefix, timeline, expect, self.verdict)
        if self.settings.print_verdict:
            report.print_verdict(self.verdict, outputs)
        else:
            log.info(
                "verdict %s: %s",
                "passed" if self.verdict.passed else "FAILED",
                outputs.verdict_json,
            )
        environment.process_exit_code = 0 if self.verdict.passed else 1

    def on_quitting(self, environment, **_) -> None:
        if self.image_server is not None:
            self.image_server.stop()
            self.image_server = None
