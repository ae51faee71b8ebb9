"""Lambda in the local cloud: functions run for real, with Lambda's concurrency rules.

- `api`: the operations answered here (Invoke, reserved and provisioned concurrency,
  GetAccountSettings, DeleteFunction); the function records are moto's;
- `functions`: what an invocation runs, read from moto's records, and the unpacked zips;
- `concurrency`: counting (leases: provisioned -> reserved -> the account's pool, else 429)
  and the rules for configuring concurrency;
- `assignment`: which execution environment takes a leased invocation; provisioned
  environments started ahead; idle ones reaped;
- `environments`: one execution environment, a process running awslambdaric;
- `runtime_api`: the Lambda Runtime API each environment polls;
- `invocations`: one invocation from lease to answer (and Event invocations' queue);
- `metrics`: the ``AWS/Lambda`` metrics in CloudWatch.
"""

from __future__ import annotations

import threading

from ops.localcloud.lambda_ import functions
from ops.localcloud.lambda_.api import LambdaApi
from ops.localcloud.lambda_.assignment import Environments
from ops.localcloud.lambda_.concurrency import Concurrency, account_limit_from_environment
from ops.localcloud.lambda_.functions import TaskRoots
from ops.localcloud.lambda_.invocations import Invoker
from ops.localcloud.lambda_.metrics import LambdaMetrics
from ops.localcloud.routes import Route, model_routes
from ops.localcloud.service import Context, Service


class LambdaService(Service):
    def __init__(self, context: Context):
        super().__init__(context)
        self.limit = account_limit_from_environment()
        self.concurrency: dict[str, Concurrency] = {}
        self._lock = threading.Lock()
        self.environments = Environments(
            context, TaskRoots(context.home / "lambda" / "tasks"), self.concurrency
        )
        self.metrics = LambdaMetrics(context.moto)
        self.invoker = Invoker(self.concurrency, self.environments, self.metrics)
        self.api = LambdaApi(
            self.concurrency, self.environments, self.invoker, self.concurrency_for
        )

    def concurrency_for(self, region: str) -> Concurrency:
        with self._lock:
            if region not in self.concurrency:
                self.concurrency[region] = Concurrency(
                    self.limit,
                    lambda name: functions.reserved_of(region, name),
                    lambda: functions.all_reserved(region),
                )
            return self.concurrency[region]

    def routes(self) -> list[Route]:
        return model_routes("Lambda", "lambda", self.api.handlers())

    def quiesce(self) -> None:
        self.invoker.cancel_events()
        self.environments.close()

    def drain(self, timeout: float) -> None:
        self.metrics.close()
