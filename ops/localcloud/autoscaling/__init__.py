"""Application Auto Scaling in the local cloud: target tracking for SageMaker endpoint variants.

- `api`: the operations answered here (the whole family the local cloud knows; none in moto);
- `backend`: scalable targets, policies and activities, and the file that keeps them;
- `controller`: the thread that runs each policy's `ops.scaling` engine on the local cloud's
  clock (``time_scale``) and scales the variants through SageMaker's hosting.
"""

from __future__ import annotations

import logging

from ops.localcloud.autoscaling.api import AutoscalingApi, make_engine
from ops.localcloud.autoscaling.backend import AutoscalingBackend
from ops.localcloud.autoscaling.controller import Controller
from ops.localcloud.routes import Route, json_routes
from ops.localcloud.sagemaker import SageMakerService
from ops.localcloud.service import Context, Service

log = logging.getLogger("dogops.localcloud")


class AutoscalingService(Service):
    """Stops first when the local cloud stops: no scaling action starts once it has quiesced."""

    def __init__(self, context: Context):
        super().__init__(context)
        path = context.home / "autoscaling" / "state.json" if context.persist else None
        self.backend = AutoscalingBackend(path)
        self.controller = Controller(
            self.backend, self._sagemaker, context.time_scale, self._set_alarm_states
        )
        self.api = AutoscalingApi(self.backend, self.controller, self._sagemaker, context.moto)
        self.backend.restore(
            self.controller.clock.now(),
            lambda policy: make_engine(policy, self.backend.targets[policy.key]),
        )
        self.api.put_restored_alarms()

    def _sagemaker(self) -> SageMakerService:
        return self.context.service(SageMakerService)

    def _set_alarm_states(self, region: str, states: dict[str, str]) -> None:
        cloudwatch = self.context.moto.client("cloudwatch", region)
        for name, state in states.items():
            try:
                cloudwatch.set_alarm_state(
                    AlarmName=name,
                    StateValue=state,
                    StateReason=f"Set by the local cloud's target tracking engine: {state}",
                )
            except Exception:  # deleted meanwhile; scaling does not depend on it
                log.debug("could not set the state of alarm %s", name, exc_info=True)

    def routes(self) -> list[Route]:
        return json_routes(
            "Application Auto Scaling",
            "application-autoscaling",
            "AnyScaleFrontendService",
            self.api.handlers(),
        )

    def quiesce(self) -> None:
        self.controller.stop()

    def drain(self, timeout: float) -> None:
        self.backend.save()
