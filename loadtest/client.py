"""A Locust `User` that invokes a Lambda function through boto3 and reports every call.

Retries are off (``total_max_attempts`` 1): a throttle must reach the statistics as a throttle,
not be hidden by botocore's backoff. Each invoke fires Locust's ``request`` event with its wall
time, the answer's size, and an exception that names its kind of failure (loadtest/outcomes.py:
`Throttled`, `FunctionError`, `HandlerError`, or what botocore raised), so Locust's failure
table and CSV keep them apart.

The event's ``context`` carries how many of this process's invocations were in flight, which
the scaling watch uses to tell a throttle at the limit from one below it.

Nothing here knows whether the function runs on AWS or on the local cloud: boto3 finds the
endpoint from its own settings (``AWS_ENDPOINT_URL``; `ops local env` prints them).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from locust import User, constant_throughput

from loadtest.outcomes import outcome, throttle

REQUEST_TYPE = "Invoke"
# Longer than the function's own timeout (65 s, terraform/modules/lambda_function): a slow answer is
# the function's to report, not a client timeout.
READ_TIMEOUT_S = 75


def lambda_client(session: boto3.Session | None = None):
    """A Lambda client with retries off and one connection (a user has one call in flight)."""
    return (session or boto3.Session()).client(
        "lambda",
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=READ_TIMEOUT_S,
            max_pool_connections=1,
        ),
    )


@dataclass(frozen=True)
class InvokeSpec:
    """What every user of a test invokes, and how often."""

    function_name: str
    qualifier: str | None  # an alias or version; None: $LATEST
    payload: bytes
    payload_name: str  # the request name in Locust's statistics
    rate: float  # requests per wall second per user; 0: back to back

    @property
    def function(self) -> str:
        return f"{self.function_name}:{self.qualifier}" if self.qualifier else self.function_name


_SPECS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def aim(environment, spec: InvokeSpec) -> None:
    """Set what the users of `environment` invoke (before they spawn)."""
    _SPECS[environment] = spec


class LambdaUser(User):
    """Abstract: a subclass's tasks call `invoke`. What to invoke, with what and how often is
    the environment's `InvokeSpec` (see `aim`)."""

    abstract = True
    in_flight: ClassVar[int] = 0  # this process's invocations under way (greenlets share it)
    _session: ClassVar[boto3.Session | None] = None

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.spec: InvokeSpec = _SPECS[environment]
        if LambdaUser._session is None:  # one session: its service models load once
            LambdaUser._session = boto3.Session()
        self.client = lambda_client(LambdaUser._session)
        self._pace = constant_throughput(self.spec.rate) if self.spec.rate > 0 else None

    def wait_time(self) -> float:
        return self._pace(self) if self._pace is not None else 0.0

    def invoke(self, payload: bytes | None = None, name: str | None = None) -> None:
        """One RequestResponse Invoke (of the spec's payload unless given), reported as `name`
        (the spec's payload name unless given)."""
        spec = self.spec
        kwargs = {"FunctionName": spec.function_name, "Payload": payload or spec.payload}
        if spec.qualifier:
            kwargs["Qualifier"] = spec.qualifier
        start_time = time.time()
        started = time.perf_counter()
        LambdaUser.in_flight += 1
        in_flight_at_start = LambdaUser.in_flight
        response_length = 0
        try:
            response = self.client.invoke(**kwargs)
            body = response["Payload"].read()
            response_length = len(body)
            exception = outcome(response, body)
        except ClientError as exc:
            exception = throttle(exc) or exc
        except BotoCoreError as exc:
            exception = exc
        finally:
            others = LambdaUser.in_flight - 1
            LambdaUser.in_flight -= 1
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name or spec.payload_name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=response_length,
            response=None,
            exception=exception,
            context={"in_flight_at_start": in_flight_at_start, "others_in_flight": others},
            start_time=start_time,
            url=None,
        )
