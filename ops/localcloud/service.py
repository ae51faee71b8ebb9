"""What a service of the local cloud gets (`Context`) and offers (`Service`).

Adding a service is one package with a `Service` subclass, plus its name in
``app.SERVICES``: its routes join the route table, and the local cloud stops it in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ops.localcloud.moto import Moto
from ops.localcloud.routes import Route
from ops.localcloud.supervisor import Supervisor

S = TypeVar("S", bound="Service")


@dataclass
class Context:
    home: Path  # $DOGOPS_HOME: work folders live under it
    moto: Moto  # records kept in moto (S3, logs, IAM) and clients for them
    supervisor: Supervisor  # the only way to start a child process
    url: str  # the front door, for what runs inside the cloud (the training host's commands)
    persist: bool = True  # keep records across restarts (under home), as S3, IAM and logs are
    # Policy seconds per wall second for what runs on the scaling clock (`ops.scaling.clock`):
    # metric periods and cooldowns shrink, the policies' declared numbers do not.
    time_scale: float = 1.0
    services: list[Service] = field(default_factory=list)  # every service, once all exist

    def service(self, kind: type[S]) -> S:
        """Another service of this local cloud (Autoscaling scales SageMaker's endpoints)."""
        return next(s for s in self.services if isinstance(s, kind))


class Service:
    def __init__(self, context: Context):
        self.context = context

    def routes(self) -> list[Route]:
        """The operations this service answers (everything else of its API is moto's)."""
        raise NotImplementedError

    def quiesce(self) -> None:
        """The local cloud is stopping: start no new work (trials, scaling actions, ...)."""

    def drain(self, timeout: float) -> None:
        """Called once the supervisor has stopped every child: finish the bookkeeping of the
        work that ended (final uploads, statuses) within ``timeout`` seconds."""
