"""The local cloud as one process: moto, the services, the front door; started and stopped in
order.

Starting goes: moto starts; S3, IAM and CloudWatch Logs are restored from ``--home``
(`persist`); the execution role every local cloud has is created if missing; the services start
(SageMaker restores its job records); the front door opens.

Stopping (``ops local down``, Ctrl-C, SIGTERM) goes: the front door stops taking requests; each
service quiesces (tuning loops start no trial; jobs get SIGTERM); the supervisor waits out the
grace period, SIGKILLs what is left and reaps every child; the services finish their
bookkeeping (final checkpoint uploads, statuses); S3, IAM and CloudWatch Logs are saved; moto
stops.

``python -m ops.localcloud.app --home DIR --port 0`` prints ``listening on http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
from pathlib import Path

import uvicorn
from moto.iam.exceptions import EntityAlreadyExists
from moto.iam.models import iam_backends

from ops.jsonfile import write_atomic
from ops.localcloud import control, loopback, persist
from ops.localcloud.autoscaling import AutoscalingService
from ops.localcloud.gateway import create_app
from ops.localcloud.iam import IamService
from ops.localcloud.lambda_ import LambdaService
from ops.localcloud.logs import LogsService
from ops.localcloud.moto import Moto
from ops.localcloud.routes import RouteTable
from ops.localcloud.sagemaker import SageMakerService
from ops.localcloud.service import Context, Service
from ops.localcloud.ssm.service import SsmService
from ops.localcloud.supervisor import Supervisor

log = logging.getLogger("dogops.localcloud")
# In the order they quiesce when the local cloud stops (what starts work before what runs it).
# Autoscaling first: no scaling action may start while SageMaker stops its endpoints.
# Lambda before SageMaker: its functions call the endpoints.
SERVICES: tuple[type[Service], ...] = (
    AutoscalingService,
    LambdaService,
    SageMakerService,
    SsmService,
    IamService,
    LogsService,
)
DRAIN_S = 60.0  # for final uploads once the children are gone
# Who may assume the execution role: SageMaker jobs, Lambda functions, EC2 instances. The
# SageMaker SDK checks that a role it is given trusts sagemaker.amazonaws.com.
EXECUTION_ROLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {
                "Service": [
                    "sagemaker.amazonaws.com",
                    "lambda.amazonaws.com",
                    "ec2.amazonaws.com",
                ]
            },
            "Action": "sts:AssumeRole",
        }
    ],
}


class LocalCloud:
    """moto + the services + the front door, started and stopped together."""

    def __init__(
        self,
        home: Path,
        host: str = loopback.HOST,
        port: int = 0,
        persist: bool = True,
        time_scale: float = 1.0,
    ):
        loopback.require_loopback(host)
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, not {time_scale}")
        self.home = home
        self.time_scale = time_scale
        self.host = host
        self.port = port
        self.persist = persist
        self.moto = Moto()
        self.supervisor = Supervisor()
        self.services: list[Service] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.url = ""

    def service(self, kind: type[Service]) -> Service:
        return next(s for s in self.services if isinstance(s, kind))

    def _prepare(self):
        self.home.mkdir(parents=True, exist_ok=True)
        self.moto.start()
        if self.persist:
            persist.restore(self.home)
        bootstrap_execution_role()
        sock, self.url = loopback.listen(self.host, self.port)
        self.port = sock.getsockname()[1]
        context = Context(
            home=self.home,
            moto=self.moto,
            supervisor=self.supervisor,
            url=self.url,
            persist=self.persist,
            time_scale=self.time_scale,
        )
        # One list, filled as the services are made: a service finds another through it once
        # all exist (`Context.service`).
        self.services = context.services
        self.services.extend(kind(context) for kind in SERVICES)
        table = RouteTable(route for service in self.services for route in service.routes())
        config = uvicorn.Config(
            create_app(table, self.moto.url, self.time_scale), log_level="warning"
        )
        self._server = uvicorn.Server(config)
        return sock

    def start(self) -> LocalCloud:
        """Serve in a background thread (tests, embedding); returns once it accepts requests."""
        sock = self._prepare()
        self._server.config.install_signal_handlers = False  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[sock])),
            daemon=True,
            name="localcloud",
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the local cloud failed to start")
            self._thread.join(0.02)
        return self

    def serve_forever(self, on_ready=None) -> None:
        """Serve in this thread until SIGINT/SIGTERM, then stop everything in order."""
        # uvicorn stops gracefully on SIGTERM, then re-raises it; with the default handler that
        # would end the process before the jobs are stopped and S3 is saved.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        sock = self._prepare()
        if on_ready:
            on_ready(self)
        try:
            self._server.run(sockets=[sock])
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut it short
            self._teardown()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._teardown()

    def _teardown(self) -> None:
        if self._stopped or not self.services:
            return
        self._stopped = True
        for service in self.services:
            service.quiesce()
        self.supervisor.stop_all()
        for service in self.services:
            service.drain(DRAIN_S)
        if self.persist:
            persist.snapshot(self.home)
        self.moto.stop()

    def environment(self) -> dict[str, str]:
        return control.client_environment(self.url)


def bootstrap_execution_role() -> None:
    """The role every local cloud has (`control.LOCAL_ROLE_ARN`), from its first start on:
    created unless it exists (restored, or made by the user), never changed. In moto's IAM
    backend directly: through the API the first call alone costs ~0.5 s of the start."""
    with contextlib.suppress(EntityAlreadyExists):
        iam_backends[control.ACCOUNT]["global"].create_role(
            role_name=control.LOCAL_ROLE_NAME,
            assume_role_policy_document=json.dumps(EXECUTION_ROLE_TRUST),
            path="/",
            permissions_boundary=None,
            description="The local cloud's execution role (IAM is not enforced locally)",
            tags=[],
            max_session_duration="3600",
        )


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)


def serve_foreground(port: int = 0, on_ready=None, time_scale: float = 1.0) -> None:
    """`ops local up` without --detach: serve in this process until Ctrl-C or SIGTERM; the
    state file names this process while it serves."""
    cloud = LocalCloud(control.home(), port=port, time_scale=time_scale)

    def ready(cloud: LocalCloud) -> None:
        control.register(cloud.url, os.getpid())
        if on_ready:
            on_ready(cloud)

    try:
        cloud.serve_forever(on_ready=ready)
    finally:
        control.unregister(os.getpid())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="work and state folder")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, help="write {url, pid} here once serving")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="policy seconds per wall second for autoscaling (20: a 60 s period takes 3 s)",
    )
    args = parser.parse_args(argv)
    if not args.time_scale > 0:
        parser.error("--time-scale must be > 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cloud = LocalCloud(args.home, port=args.port, time_scale=args.time_scale)

    def ready(cloud: LocalCloud) -> None:
        print(f"listening on {cloud.url}", flush=True)
        if args.ready_file:
            document = {"url": cloud.url, "pid": os.getpid(), "home": str(args.home)}
            write_atomic(args.ready_file, document)

    cloud.serve_forever(on_ready=ready)


if __name__ == "__main__":
    main()
