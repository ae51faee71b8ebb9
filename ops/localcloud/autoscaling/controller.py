"""The controller: one thread that runs every policy's engine on the local cloud's clock and
applies its decisions to the endpoints.

Each policy period (60 policy seconds: 60 / ``time_scale`` wall seconds) it reads the variant's
InvocationsPerInstance for that period from SageMaker's metrics (each request counts 1 / the
instances in service when it arrived, so the sum is invocations per instance), gives the
engine that datapoint and evaluates it with the variant's CurrentInstanceCount. The metrics
are kept per wall second; a period that covers part of a second gets that part of it (a
compressed period can be shorter than a second). A period is read once every second it
touches is over, as CloudWatch evaluates an alarm after the period's data has arrived.

A decision becomes `EndpointRunner.set_desired_instance_count` (the path of
UpdateEndpointWeightsAndCapacities). The activity succeeds once the endpoint is InService
with the new count serving (its cooldown starts then), and fails with the endpoint's reason
if the change could not be made. While the endpoint is being created, updated or rescaled by
anyone else, the datapoint is kept but the policy is not run: SageMaker would refuse the
change ("auto scaling is blocked while UpdateEndpoint is in progress"). An endpoint that does
not serve (Creating, Failed, deleted) gives no datapoint, so its alarms have no data.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable

from ops.localcloud.autoscaling.backend import AutoscalingBackend, Key, Policy, Target
from ops.scaling.clock import RealClock
from ops.scaling.policy import PERIOD_SECONDS, Activity, AlarmState, Engine, StatusCode

log = logging.getLogger("dogops.localcloud")
# Statuses of DescribeEndpoint in which the endpoint takes invocations, and in which a change
# (create, update, rescale, delete) is under way: SageMaker's hosting records say the same.
SERVING = ("InService", "Updating", "SystemUpdating", "RollingBack")
CHANGING = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
SETTLE_S = 0.05  # wall seconds after a metric second ends before it is read: late records
TICK_S = 0.05  # the longest the controller sleeps between looks


class Controller:
    """Drives the engines; ``sagemaker()`` gives the SageMaker service (hosting, metrics,
    endpoints), resolved when first needed."""

    def __init__(
        self,
        backend: AutoscalingBackend,
        sagemaker: Callable[[], object],
        time_scale: float = 1.0,
        alarm_states: Callable[[str, dict[str, str]], None] | None = None,
    ) -> None:
        self.backend = backend
        self.clock = RealClock(time_scale)
        self.time_scale = time_scale
        self._sagemaker = sagemaker
        # (region, {alarm name: state}) -> CloudWatch, when an alarm's state changes.
        self._alarm_states = alarm_states
        self._shown: dict[str, str] = {}  # alarm name -> the state CloudWatch shows
        # Activities waiting for the endpoint to finish a change: key -> (activity, engine).
        self._pending: dict[Key, tuple[Activity, Engine | None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="autoscaling")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    # -- what the API asks for -----------------------------------------------------------------

    def first_period_end(self) -> float:
        """The end of the period now under way: a new policy's first datapoint."""
        return (math.floor(self.clock.now() / PERIOD_SECONDS) + 1) * PERIOD_SECONDS

    def enforce_bounds(self, target: Target, cause_min: bool, desired: int, current: int) -> None:
        """Set the variant to ``desired`` because the registered bounds exclude ``current``
        (AWS scales at once; the cause names the bound)."""
        bound = "minimum" if cause_min else "maximum"
        activity = Activity(
            activity_id=str(uuid.uuid4()),
            target=target.scalable(),
            description=f"Setting desired instance count to {desired}.",
            cause=f"{bound} capacity was set to {desired}",
            start_time=self.clock.now(),
            status_code=StatusCode.IN_PROGRESS,
            previous_capacity=current,
            desired_capacity=desired,
            status_message=(
                f"Successfully set desired instance count to {desired}. Waiting for change to "
                "be fulfilled by sagemaker."
            ),
        )
        self.backend.record(target.key, activity)
        self._apply(target, activity, None)

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self._sagemaker()
            except StopIteration:  # the local cloud is still making its services
                continue
            try:
                self._settle()
                for policy in self.backend.all_policies():
                    self._step(policy)
            except Exception:  # the controller must outlive a bug in one round
                log.exception("the autoscaling controller failed")

    def _wall(self, policy_time: float) -> float:
        """The wall time (time.time()) at which the clock shows ``policy_time``."""
        return time.time() + (policy_time - self.clock.now()) / self.time_scale

    def _step(self, policy: Policy) -> None:
        engine = policy.engine
        if engine is None:
            return
        if policy.next_period_end is None:
            policy.next_period_end = self.first_period_end()
        end = policy.next_period_end
        start_wall, end_wall = self._wall(end - PERIOD_SECONDS), self._wall(end)
        if time.time() < math.ceil(end_wall) + SETTLE_S:
            return
        policy.next_period_end = end + PERIOD_SECONDS
        try:
            target = self.backend.target(policy.key)
        except Exception:
            return  # deregistered meanwhile
        sagemaker = self._sagemaker()
        endpoint = sagemaker.endpoints.endpoints.get((target.region, target.endpoint))
        if endpoint is None or endpoint.status not in SERVING:
            return  # no datapoint: the alarms have no data
        with sagemaker.endpoints.lock:
            fleet = endpoint.fleets.get(target.variant)
            current = len(fleet.in_service()) if fleet else 0
            status = endpoint.status
        value = self._metric(target, engine, start_wall, end_wall)
        engine.observe(end, value)
        if status in CHANGING or target.key in self._pending or current == 0:
            return
        if self._suspended(target, engine, end):
            return
        seen = engine.evaluate(end, current)
        self._show_alarms(target.region, engine, seen)
        if seen.not_scaled is not None:
            self.backend.record(target.key, seen.not_scaled)
        if seen.decision is not None:
            activity = seen.decision.activity
            self.backend.record(target.key, activity)
            log.info(
                "autoscaling %s: %s (%s)", target.resource_id, activity.description, activity.cause
            )
            self._apply(target, activity, engine)

    def _show_alarms(self, region: str, engine: Engine, seen) -> None:
        """Give the policy's CloudWatch alarms the states the engine saw, when they change."""
        states = {engine.high_alarm.name: str(seen.high)}
        if engine.low_alarm is not None and seen.low is not None:
            states[engine.low_alarm.name] = str(seen.low)
        changed = {name: state for name, state in states.items() if self._shown.get(name) != state}
        if changed and self._alarm_states is not None:
            self._shown.update(changed)
            self._alarm_states(region, changed)

    def _suspended(self, target: Target, engine: Engine, now: float) -> bool:
        """Whether the alarm that would act is suspended (SuspendedState)."""
        suspended = target.suspended
        if engine.alarm_state(engine.high_alarm, now) is AlarmState.ALARM:
            return bool(suspended.get("DynamicScalingOutSuspended"))
        return bool(suspended.get("DynamicScalingInSuspended"))

    def _metric(self, target: Target, engine: Engine, start: float, end: float) -> float:
        """The Sum of the policy's metric (InvocationsPerInstance, or a customised Invocations)
        over wall times [start, end): whole seconds, and the covered part of a second cut by
        either end."""
        per_instance = engine.high_alarm.metric.metric_name == "InvocationsPerInstance"
        metrics = self._sagemaker().metrics
        total = 0.0
        for second in range(math.floor(start), math.ceil(end)):
            overlap = min(second + 1, end) - max(second, start)
            if overlap <= 0:
                continue
            window = metrics.window(
                target.region, target.endpoint, target.variant, second, second + 1
            )
            count = window.invocations_per_instance if per_instance else window.invocations
            total += count * overlap
        return total

    # -- applying and settling decisions ---------------------------------------------------------

    def _apply(self, target: Target, activity: Activity, engine: Engine | None) -> None:
        hosting = self._sagemaker().hosting
        try:
            hosting.set_desired_instance_count(
                target.region, target.endpoint, target.variant, activity.desired_capacity
            )
        except Exception as exc:  # busy, gone or failed: the activity fails, saying why
            self._finish(target.key, activity, engine, failure=str(exc))
            return
        with self._lock:
            self._pending[target.key] = (activity, engine)

    def _settle(self) -> None:
        """Finish the activities whose endpoint change is over."""
        with self._lock:
            pending = list(self._pending.items())
        if not pending:
            return
        sagemaker = self._sagemaker()
        for key, (activity, engine) in pending:
            region, _, resource_id, _ = key
            endpoint_name, variant = resource_id.split("/")[1], resource_id.split("/")[3]
            endpoint = sagemaker.endpoints.endpoints.get((region, endpoint_name))
            if endpoint is None:
                self._finish(key, activity, engine, failure=f"Endpoint {endpoint_name} is gone.")
                continue
            with sagemaker.endpoints.lock:
                if endpoint.status in CHANGING:
                    continue
                fleet = endpoint.fleets.get(variant)
                serving = len(fleet.in_service()) if fleet else 0
                desired = fleet.spec["DesiredInstanceCount"] if fleet else 0
                reason = endpoint.failure_reason
            if serving == desired == activity.desired_capacity:
                self._finish(key, activity, engine)
            else:
                self._finish(
                    key,
                    activity,
                    engine,
                    failure=reason
                    or f"the variant has {serving} instances in service, not "
                    f"{activity.desired_capacity}",
                )

    def _finish(
        self, key: Key, activity: Activity, engine: Engine | None, failure: str | None = None
    ) -> None:
        now = self.clock.now()
        with self._lock:
            self._pending.pop(key, None)
        with self.backend.lock:
            if engine is not None and engine.in_progress is activity:
                if failure is None:
                    engine.complete(activity.activity_id, now)
                else:
                    engine.fail(activity.activity_id, now, failure)
            else:  # a change the bounds asked for (no engine, no cooldown)
                activity.end_time = now
                if failure is None:
                    activity.status_code = StatusCode.SUCCESSFUL
                    activity.status_message = (
                        f"Successfully set desired instance count to "
                        f"{activity.desired_capacity}. Change successfully fulfilled by "
                        "sagemaker."
                    )
                else:
                    activity.status_code = StatusCode.FAILED
                    activity.status_message = (
                        f"Failed to set desired instance count to {activity.desired_capacity}. "
                        f"Reason: {failure}"
                    )
            self.backend.save()
        log.info(
            "autoscaling %s: %s %s",
            activity.target.resource_id,
            activity.description,
            activity.status_code,
        )
