"""One invocation from lease to answer: counting (`concurrency`), then assignment
(`assignment`), then the environment runs it (`environments`); metrics and the log tail on the
way out.

Synchronous invocations are awaited on the front door's event loop, so a slow function holds
no thread: reserved concurrency of 100 means 100 invocations in flight, not a thread pool's
worth. Event invocations go to a queue of their own and run the same way; a throttled one is
retried until it runs, and one that fails is retried twice, one and two minutes later
(LAM:invocation-async: the default MaximumRetryAttempts 2).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from dataclasses import dataclass

from ops.localcloud.lambda_ import functions
from ops.localcloud.lambda_.assignment import Environments
from ops.localcloud.lambda_.concurrency import PROVISIONED, Concurrency, Throttled
from ops.localcloud.lambda_.environments import Environment, Invocation, Outcome
from ops.localcloud.lambda_.functions import FunctionSpec
from ops.localcloud.lambda_.metrics import LambdaMetrics, dimension_sets

log = logging.getLogger("dogops.localcloud")
EVENT_RETRY_DELAYS_S = (60.0, 120.0)
EVENT_THROTTLE_RETRY_S = 1.0
EVENT_MAX_AGE_S = 6 * 3600.0  # LAM:invocation-async: MaximumEventAgeInSeconds' default


@dataclass
class Result:
    outcome: Outcome
    version: str
    cold: bool


class Invoker:
    def __init__(
        self,
        concurrency: dict[str, Concurrency],
        environments: Environments,
        metrics: LambdaMetrics,
    ):
        self.concurrency = concurrency
        self.environments = environments
        self.metrics = metrics
        self._events: set[asyncio.Task] = set()

    def qualifiers(self, spec: FunctionSpec) -> list[str]:
        """The qualifiers whose provisioned config may serve this invocation: the one
        invoked, then (for an alias) its version."""
        if not spec.qualifier or spec.qualifier == functions.LATEST:
            return []
        found = [spec.qualifier]
        if spec.version != spec.qualifier:
            found.append(spec.version)
        return found

    async def invoke(
        self, spec: FunctionSpec, payload: bytes, client_context: str | None
    ) -> Result:
        """Run one invocation and return its `Result`, or raise `Throttled`. Cancelled (an
        Event invocation when the local cloud stops), the environment it held is stopped."""
        region, sets = spec.region, dimension_sets(spec.name, spec.qualifier)
        concurrency = self.concurrency[region]
        started = time.time()  # its metrics carry the invocation's time (LAM:monitoring-metrics)
        try:
            lease = concurrency.lease(spec.name, self.qualifiers(spec), spec.version)
        except Throttled:
            self.metrics.add(region, sets, "Throttles", 1, started)
            raise
        environment: Environment | None = None
        try:
            self._count_start(spec, lease, sets, started)
            environment = self.environments.take_idle(spec, lease.kind, lease.config)
            cold = environment is None
            if cold:
                environment = await self._start(spec, lease)
                # Init runs outside the function's timeout (up to its own limit).
                await environment.ready.wait_async(environment.init_limit())
                if not environment.ready.value:
                    environment.stop()
                    outcome = _init_failure(environment)
                    self._count_end(spec, outcome, sets, started)
                    return Result(outcome, spec.version, cold)
            invocation = Invocation(
                request_id=str(uuid.uuid4()),
                payload=payload,
                invoked_arn=spec.invoked_arn,
                client_context=client_context,
                version=spec.version,
                timeout_s=spec.timeout_s,
            )
            environment.deliver(invocation)
            if not await invocation.done.wait_async(spec.timeout_s):
                environment.time_out(invocation)  # answers the invocation in every case
            outcome = invocation.done.value
            held, environment = environment, None
            self.environments.release(held)
            self._count_end(spec, outcome, sets, started)
            return Result(outcome, spec.version, cold)
        except BaseException:
            if environment is not None:
                environment.stop()
            raise
        finally:
            concurrency.release(lease)

    async def _start(self, spec: FunctionSpec, lease) -> Environment:
        """A new environment, spawned off the event loop (process, log stream, credentials,
        the first unzip: tens of ms). If the caller is cancelled meanwhile, the environment is
        stopped once the spawn returns."""
        future = asyncio.ensure_future(
            asyncio.to_thread(self.environments.start, spec, lease.kind, lease.config)
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_stop_when_started)
            raise

    def invoke_later(self, spec: FunctionSpec, payload: bytes) -> None:
        """``InvocationType=Event``: queued here, run when concurrency allows."""
        task = asyncio.get_running_loop().create_task(self._run_event(spec, payload))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def _run_event(self, spec: FunctionSpec, payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        failures = 0
        while loop.time() - started < EVENT_MAX_AGE_S:
            try:
                result = await self.invoke(spec, payload, None)
            except Throttled:
                await asyncio.sleep(EVENT_THROTTLE_RETRY_S)
                continue
            except Exception:
                log.exception("%s: an asynchronous invocation could not run", spec.name)
                return
            if result.outcome.error is None or failures >= len(EVENT_RETRY_DELAYS_S):
                return
            await asyncio.sleep(EVENT_RETRY_DELAYS_S[failures])
            failures += 1

    def cancel_events(self) -> None:
        for task in list(self._events):
            task.get_loop().call_soon_threadsafe(task.cancel)

    # -- metrics -------------------------------------------------------------------------------

    def _count_start(self, spec: FunctionSpec, lease, sets, at: float) -> None:
        region, concurrency = spec.region, self.concurrency[spec.region]
        add = functools.partial(self.metrics.add, at=at)
        add(region, sets, "ConcurrentExecutions", concurrency.running(spec.name))
        add(region, [()], "ConcurrentExecutions", concurrency.total_running())
        add(region, [()], "UnreservedConcurrentExecutions", concurrency.unreserved_running())
        if lease.kind == PROVISIONED:
            in_use, allocated = lease.config.in_use, lease.config.allocated
            add(region, sets, "ProvisionedConcurrencyInvocations", 1)
            add(region, sets, "ProvisionedConcurrentExecutions", in_use)
            if allocated:
                add(region, sets, "ProvisionedConcurrencyUtilization", in_use / allocated)
        elif lease.spillover:
            add(region, sets, "ProvisionedConcurrencySpilloverInvocations", 1)

    def _count_end(self, spec: FunctionSpec, outcome: Outcome, sets, at: float) -> None:
        self.metrics.add(spec.region, sets, "Invocations", 1, at)
        self.metrics.add(spec.region, sets, "Errors", 1 if outcome.error else 0, at)
        self.metrics.add(spec.region, sets, "Duration", outcome.duration_ms, at)


def _stop_when_started(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().stop()


def _init_failure(environment) -> Outcome:
    """What the invocation that waited for a failed init gets: the runtime's init error (or
    why the process ended), as AWS answers it, with ``Unhandled``."""
    payload = environment.init_error or (
        b'{"errorType": "Runtime.InitTimeout", "errorMessage": "The function did not '
        b'initialise in time"}'
    )
    return Outcome(payload, "Unhandled", 0.0, "", environment.init_ms)
