"""`SsmService`: Run Command's routes, records and runner, stopped with the local cloud."""

from __future__ import annotations

from ops.localcloud.routes import Route, json_routes
from ops.localcloud.service import Context, Service
from ops.localcloud.ssm.api import SsmApi
from ops.localcloud.ssm.commands import CommandRunner, SsmBackend


class SsmService(Service):
    def __init__(self, context: Context):
        super().__init__(context)
        self.backend = SsmBackend()
        self.runner = CommandRunner(context)
        self.api = SsmApi(self.backend, self.runner)

    def routes(self) -> list[Route]:
        return json_routes("SSM", "ssm", "AmazonSSM", self.api.handlers())

    def drain(self, timeout: float) -> None:
        """The supervisor has stopped every script; record how each ended."""
        self.runner.workers.join(timeout)
