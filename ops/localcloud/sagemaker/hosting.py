"""SageMaker hosting, run for real: every endpoint instance is a model server on this machine.

An instance is ``python -m ops.model_server`` (the server behind ``ops serve``, which speaks the
inference container's contract: ``GET /ping``, ``POST /invocations``) started through the
supervisor on a free loopback port, serving its variant's ``model.tar.gz``, downloaded from
(local) S3 and unpacked once per variant and deployment into
``$DOGOPS_HOME/endpoints/<region>/<endpoint>/<variant>-<n>/``. Its output goes to CloudWatch
Logs, group ``/aws/sagemaker/Endpoints/<endpoint>``, stream ``<variant>/<instance id>``, where
AWS puts a container's logs (SM:logging-cloudwatch). It serves once it answers ``/ping`` with
200; one that exits first, or does not answer within the variant's
``ContainerStartupHealthCheckTimeoutInSeconds``, fails the deployment.

What each operation does (the statuses are DescribeEndpoint's; see AWS-SEMANTICS.md B1-B3):

- CreateEndpoint: ``Creating``, then ``InService`` once every instance of every variant answers
  ``/ping``, else ``Failed`` with AWS's FailureReason and every instance stopped.
- UpdateEndpoint: blue/green, all at once (the default; canary and linear traffic routing and
  rolling updates also run all at once here): ``Updating`` while a new fleet starts beside the
  old one, which keeps serving. Once every new instance is healthy, traffic moves to the new
  fleet in one step; the old one leaves routing, finishes the requests it has (its instances
  drain), waits ``TerminationWaitInSeconds``, and stops; then ``InService``. If the new fleet
  fails, it is stopped, the endpoint stays on the old fleet, returns to ``InService`` and says
  why in ``FailureReason``, as AWS does; the next update clears it.
- UpdateEndpointWeightsAndCapacities, and `EndpointRunner.set_desired_instance_count` (what
  the autoscaling controller calls): weights apply at once; a larger count starts instances
  that join routing one by one as they become healthy, a smaller one drains and stops the
  surplus. ``Updating`` meanwhile, then ``InService``; instances that fail to start are stopped
  and the variant keeps its former desired count, with the reason in ``FailureReason``.
- DeleteEndpoint: ``Deleting``; no new requests; instances drain and stop; the record goes.
- An instance that exits while in service leaves routing at once and is replaced (with a
  growing pause, up to 30 s, between replacements that keep failing). The endpoint stays
  ``InService``; ``CurrentInstanceCount`` counts only the instances that answer requests.

Removed instances get SIGTERM, then SIGKILL 30 s later, as AWS documents for containers
(SM:your-algorithms-inference-code); when the local cloud stops, every instance stops with its
other children. At the next start the endpoints come back (`resume`): ``SystemUpdating`` (AWS's
status for maintenance that changes nothing the user set) while their instances start again
from the saved model data, then ``InService``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx

from ops import s3 as ops_s3
from ops.errors import OpsError
from ops.localcloud import cwlogs
from ops.localcloud.sagemaker.endpoint_records import (
    IN_PROGRESS,
    Endpoint,
    EndpointBackend,
    EndpointBusy,
    EndpointRequestError,
    Fleet,
    Instance,
)
from ops.localcloud.service import Context
from ops.localcloud.supervisor import SupervisorClosed, Workers
from ops.localcloud.wire import now

log = logging.getLogger("dogops.localcloud")
LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
# "/ping ... must pass consistently within 4 min of start" (AWS-SEMANTICS.md B4, from
# SM:your-algorithms-inference-code); ContainerStartupHealthCheckTimeoutInSeconds overrides it.
STARTUP_TIMEOUT_S = 240.0
PING_TIMEOUT_S = 2.0  # "/ping ... timeout 2 s" (B4)
INVOCATION_TIMEOUT_S = 60.0  # "/invocations reply within 60 s" (B4): what a drain waits for
STOP_GRACE_S = 30.0  # "SIGTERM, then SIGKILL 30 s later" (B3)
REPLACE_BACKOFF_MAX_S = 30.0
WATCH_EVERY_S = 0.2
_LISTENING = re.compile(r"listening on (http://\S+)")
# AWS's FailureReason when a container does not pass the ping health check (B1, from
# aws/amazon-sagemaker-examples#210).
HEALTH_CHECK_FAILED = (
    "The primary container for production variant {variant} did not pass the ping health "
    "check. Please check CloudWatch logs for this endpoint."
)
UPDATE_INTERRUPTED = (
    "The local cloud stopped while the endpoint was being updated to endpoint configuration "
    '"{config}"; the endpoint kept its previous configuration.'
)
RESTART_FAILED = "The local cloud could not start the endpoint's instances again: {reason}"


class DeploymentFailed(Exception):
    """Instances of a deployment could not start; ``reason`` is the endpoint's FailureReason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class EndpointRunner:
    """Starts, watches and stops the fleets of model servers behind the endpoints; changes the
    endpoint records through the backend, under its lock."""

    def __init__(self, context: Context, backend: EndpointBackend, cpus: int | None = None):
        self.backend = backend
        self.supervisor = context.supervisor
        self.moto = context.moto
        self.work_root = context.home / "endpoints"
        self.cpus = cpus or os.cpu_count() or 1
        self.workers = Workers()
        self.closing = threading.Event()
        self.stop_grace = STOP_GRACE_S
        self.default_startup_timeout = STARTUP_TIMEOUT_S
        self._ping = httpx.Client(timeout=PING_TIMEOUT_S)
        self._sequence = 0
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="endpoint-watch")
        self._watcher.start()

    # -- what the API (and the autoscaling controller) asks for -----------------------------

    def create(self, endpoint: Endpoint) -> None:
        """Start the new endpoint's fleets (its record is in the backend, ``Creating``)."""
        self.workers.start(f"endpoint-{endpoint.name}", self._create, endpoint)

    def update(
        self,
        endpoint: Endpoint,
        config_name: str,
        specs: list[dict],
        deployment_config: dict | None = None,
    ) -> None:
        """Blue/green to ``specs`` (variant specs of ``config_name``)."""
        with self.backend.lock:
            self._require_changeable(endpoint)
            endpoint.status = "Updating"
            endpoint.failure_reason = None
            endpoint.pending = {
                "EndpointConfigName": config_name,
                "StartTime": now(),
                "Variants": specs,
            }
            if deployment_config is not None:
                endpoint.deployment_config = deployment_config
            self.backend.changed(endpoint)
        wait = ((deployment_config or {}).get("BlueGreenUpdatePolicy") or {}).get(
            "TerminationWaitInSeconds", 0
        )
        self.workers.start(f"endpoint-{endpoint.name}", self._update, endpoint, specs, wait)

    def set_desired_instance_count(
        self, region: str, endpoint_name: str, variant: str, count: int
    ) -> None:
        """Scale ``variant`` of the endpoint to ``count`` instances, as
        UpdateEndpointWeightsAndCapacities does: DesiredInstanceCount changes now, instances
        start (or drain and stop) in the background while the endpoint is ``Updating``.
        Raises `EndpointBusy` while the endpoint is being created, updated, rescaled or deleted
        (on AWS: ValidationException "Cannot update in-progress endpoint"), and
        `EndpointRequestError` for an unknown endpoint or variant or a Failed endpoint."""
        self.update_weights_and_capacities(
            region, endpoint_name, [{"VariantName": variant, "DesiredInstanceCount": count}]
        )

    def update_weights_and_capacities(
        self, region: str, endpoint_name: str, changes: list[dict]
    ) -> Endpoint:
        endpoint = self.backend.endpoint(region, endpoint_name)
        with self.backend.lock:
            self._require_changeable(endpoint)
            specs = [endpoint.variant(change["VariantName"]) for change in changes]
            rescaled: list[tuple[str, int]] = []
            for spec, change in zip(specs, changes, strict=True):
                if change.get("DesiredWeight") is not None:
                    spec["DesiredWeight"] = float(change["DesiredWeight"])
                if change.get("DesiredInstanceCount") is not None:
                    rescaled.append((spec["VariantName"], spec["DesiredInstanceCount"]))
                    spec["DesiredInstanceCount"] = int(change["DesiredInstanceCount"])
            endpoint.status = "Updating"
            self.backend.changed(endpoint)
        self.workers.start(f"endpoint-{endpoint.name}", self._rescale, endpoint, rescaled)
        return endpoint

    def delete(self, endpoint: Endpoint) -> None:
        with self.backend.lock:
            if endpoint.status in IN_PROGRESS:
                raise _busy(endpoint)
            endpoint.status = "Deleting"
            self.backend.changed(endpoint)
        self.workers.start(f"endpoint-{endpoint.name}", self._delete, endpoint)

    def resume(self, endpoint: Endpoint) -> None:
        """An endpoint restored from disk at start: serve again what it served."""
        shutil.rmtree(self._endpoint_folder(endpoint), ignore_errors=True)
        with self.backend.lock:
            if endpoint.status == "Deleting":
                self.backend.remove_endpoint(endpoint)
                return
            if endpoint.status in ("Failed", "OutOfService"):
                return
            if endpoint.status != "Creating":
                if endpoint.pending:
                    endpoint.failure_reason = UPDATE_INTERRUPTED.format(
                        config=endpoint.pending["EndpointConfigName"]
                    )
                    endpoint.pending = None
                endpoint.status = "SystemUpdating"
            self.backend.changed(endpoint)
        self.workers.start(f"endpoint-{endpoint.name}", self._create, endpoint)

    # -- the local cloud stops ---------------------------------------------------------------

    def quiesce(self) -> None:
        """Start nothing from now on; the supervisor stops every instance. Deployments under
        way leave their records as they are: the next start resumes from them."""
        self.closing.set()

    def drain(self, timeout: float) -> None:
        self.workers.join(timeout)
        self._watcher.join(timeout=1.0)
        for endpoint in self.backend.all_endpoints():
            with self.backend.lock:
                instances = [
                    instance
                    for fleet in [*endpoint.fleets.values(), *endpoint.pending_fleets.values()]
                    for instance in fleet.instances
                ]
            for instance in instances:
                _close_log(instance)
        self._ping.close()

    # -- deployments ---------------------------------------------------------------------------

    def _create(self, endpoint: Endpoint) -> None:
        """Creating (or SystemUpdating after a restart) -> InService, or Failed."""
        fleets = {spec["VariantName"]: self._fleet(endpoint, spec) for spec in endpoint.variants}
        with self.backend.lock:
            endpoint.fleets = fleets
            for fleet in fleets.values():
                fleet.set_status("Creating")
        try:
            self._start_fleets(endpoint, list(fleets.values()))
        except DeploymentFailed as exc:
            self._retire(_instances(fleets.values()))
            if self.closing.is_set():
                return
            with self.backend.lock:
                reason = exc.reason
                if endpoint.status == "SystemUpdating":
                    reason = RESTART_FAILED.format(reason=exc.reason)
                endpoint.status, endpoint.failure_reason = "Failed", reason[:1024]
                for fleet in fleets.values():
                    fleet.set_status(None)
                self.backend.changed(endpoint)
            return
        with self.backend.lock:
            for fleet in fleets.values():
                fleet.set_status(None)
            endpoint.status = "InService"
            self.backend.changed(endpoint)

    def _update(self, endpoint: Endpoint, specs: list[dict], termination_wait: int) -> None:
        fleets = {spec["VariantName"]: self._fleet(endpoint, spec) for spec in specs}
        with self.backend.lock:
            endpoint.pending_fleets = fleets
            for fleet in fleets.values():
                fleet.set_status("Creating")
        try:
            self._start_fleets(endpoint, list(fleets.values()))
        except DeploymentFailed as exc:
            self._retire(_instances(fleets.values()))
            if self.closing.is_set():
                return
            with self.backend.lock:
                endpoint.pending, endpoint.pending_fleets = None, {}
                endpoint.status, endpoint.failure_reason = "InService", exc.reason[:1024]
                self.backend.changed(endpoint)
            self._remove_folders(fleets.values())
            return
        with self.backend.lock:
            if self.closing.is_set():
                return
            # Traffic moves here, in one step: `runtime` routes by `endpoint.fleets`.
            old = endpoint.fleets
            endpoint.fleets, endpoint.pending_fleets = fleets, {}
            endpoint.variants = specs
            endpoint.config_name = endpoint.pending["EndpointConfigName"]
            for fleet in fleets.values():
                fleet.set_status(None)
            for fleet in old.values():
                fleet.set_status("Deleting")
            self.backend.changed(endpoint)
        if termination_wait:
            self.closing.wait(termination_wait)
        self._retire(_instances(old.values()))
        self._remove_folders(old.values())
        with self.backend.lock:
            endpoint.pending = None
            if not self.closing.is_set():
                endpoint.status = "InService"
            self.backend.changed(endpoint)

    def _rescale(self, endpoint: Endpoint, rescaled: list[tuple[str, int]]) -> None:
        failures = []
        for variant, previous in rescaled:
            with self.backend.lock:
                fleet = endpoint.fleets[variant]
                desired = fleet.spec["DesiredInstanceCount"]
                live = [i for i in fleet.instances if i.state in ("Pending", "InService")]
                fleet.set_status("Updating", f"Scaling to {desired} instances")
                added = self._add_instances(fleet, desired - len(live))
                # Scale in: first what does not serve yet, then the least busy, newest first.
                surplus = sorted(
                    live, key=lambda i: (i.state == "InService", i.in_flight, -live.index(i))
                )[: max(0, len(live) - desired)]
            try:
                self._start_instances(endpoint, fleet, added)
            except DeploymentFailed as exc:
                self._retire(added)
                if self.closing.is_set():
                    return  # the desired count stands: the next start brings it up
                failures.append(exc.reason)
                with self.backend.lock:
                    fleet.spec["DesiredInstanceCount"] = previous
            self._retire(surplus)
            with self.backend.lock:
                fleet.set_status(None)
        if self.closing.is_set():
            return
        with self.backend.lock:
            endpoint.status = "InService"
            if failures:
                endpoint.failure_reason = failures[0][:1024]
            self.backend.changed(endpoint)

    def _delete(self, endpoint: Endpoint) -> None:
        with self.backend.lock:
            fleets = [*endpoint.fleets.values(), *endpoint.pending_fleets.values()]
            for fleet in fleets:
                fleet.set_status("Deleting")
        self._retire(_instances(fleets))
        if self.closing.is_set():
            return  # the next start finishes the deletion (`resume`)
        shutil.rmtree(self._endpoint_folder(endpoint), ignore_errors=True)
        self.backend.remove_endpoint(endpoint)

    def _start_fleets(self, endpoint: Endpoint, fleets: list[Fleet]) -> None:
        """Fetch each fleet's model, start its instances, wait until all are healthy; raise
        `DeploymentFailed` at the first that cannot (the caller stops the rest)."""
        cwlogs.ensure_group(self.moto.client("logs", endpoint.region), _log_group(endpoint))
        started = []
        for fleet in fleets:
            self._fetch_model(endpoint, fleet)
            with self.backend.lock:
                added = self._add_instances(fleet, fleet.spec["DesiredInstanceCount"])
            started.append((fleet, added))
        for fleet, added in started:
            self._start_instances(endpoint, fleet, added)

    def _start_instances(self, endpoint: Endpoint, fleet: Fleet, instances: list[Instance]) -> None:
        """Spawn ``instances`` (already in the fleet, Pending) and wait until each answers
        /ping; raise `DeploymentFailed` if one does not."""
        for instance in instances:
            self._spawn(endpoint, fleet, instance)
        timeout = float(fleet.spec.get("StartupTimeoutS") or self.default_startup_timeout)
        deadline = time.monotonic() + timeout
        for instance in instances:
            if not self._wait_healthy(instance, deadline) and instance.state == "Failed":
                raise DeploymentFailed(HEALTH_CHECK_FAILED.format(variant=fleet.name))

    def _add_instances(self, fleet: Fleet, count: int) -> list[Instance]:
        """``count`` new Pending instances in ``fleet`` (called under the backend's lock, so
        that what counts as live is decided once)."""
        added = [Instance(_instance_id(), fleet.name) for _ in range(max(0, count))]
        fleet.instances.extend(added)
        return added

    # -- one instance ------------------------------------------------------------------------------

    def _fetch_model(self, endpoint: Endpoint, fleet: Fleet) -> None:
        uri = fleet.spec.get("ModelDataUrl")
        if not uri:
            raise DeploymentFailed(
                f"Model {fleet.spec['ModelName']} has no ModelDataUrl. The local cloud serves a "
                "model.tar.gz with code/inference.py (as training writes it), not a container "
                "image alone."
            )
        shutil.rmtree(fleet.folder, ignore_errors=True)
        fleet.folder.mkdir(parents=True)
        try:
            ops_s3.fetch_tarball(
                self.moto.client("s3", endpoint.region), uri, fleet.folder / "model"
            )
        except OpsError as exc:
            bucket, key = ops_s3.parse_s3_uri(uri)
            # AWS's words when the model data cannot be read [inferred from CreateModel's
            # "Could not find model data at ..." and the hosting service's download errors].
            raise DeploymentFailed(
                f"Failed to download model data(bucket: {bucket}, key: {key}). Please ensure "
                "that there is an object located at the URL and that the role passed to "
                f"CreateModel has permissions to download the model. ({exc})"
            ) from exc

    def _spawn(self, endpoint: Endpoint, fleet: Fleet, instance: Instance) -> None:
        logs = self.moto.client("logs", endpoint.region)
        writer = cwlogs.LogStreamWriter(logs, _log_group(endpoint), f"{fleet.name}/{instance.id}")
        instance.writer = writer

        def sink(line: str) -> None:
            writer.write(line)
            if not instance.listening.is_set():
                match = _LISTENING.search(line)
                if match:
                    instance.url = match.group(1)
                    instance.listening.set()

        command = [sys.executable, "-m", "ops.model_server", str(fleet.folder / "model")]
        command += ["--host", "127.0.0.1", "--port", "0"]
        try:
            child = self.supervisor.spawn(
                f"endpoint {endpoint.name}/{fleet.name}/{instance.id}",
                command,
                cwd=fleet.folder,
                env=self._environment(fleet.spec),
                sink=sink,
            )
        except SupervisorClosed as exc:
            with self.backend.lock:
                instance.state = "Failed"
            raise DeploymentFailed("The local cloud is stopping.") from exc
        with self.backend.lock:
            instance.child = child
            retired = instance.state != "Pending"
        if retired:  # scaled in or deleted while it was being started
            child.terminate(self.stop_grace)

    def _environment(self, spec: dict) -> dict[str, str]:
        """The local cloud's environment without its AWS settings (a container gets none of
        them), plus the container's ``Environment``; the variant's instances share the cores
        unless the model says otherwise."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        threads = max(1, self.cpus // max(1, spec["DesiredInstanceCount"]))
        env.update({"OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"})
        env.update({str(k): str(v) for k, v in spec.get("Environment", {}).items()})
        return env

    def _wait_healthy(self, instance: Instance, deadline: float) -> bool:
        """Wait for the instance to answer /ping with 200 (then it is InService); False if it
        exits, times out (then it is stopped) or was retired meanwhile."""
        child = instance.child
        while time.monotonic() < deadline and not self.closing.is_set():
            if instance.state != "Pending":  # retired meanwhile
                break
            if instance.listening.is_set() and self._answers_ping(instance.url):
                with self.backend.lock:
                    if instance.state != "Pending":
                        return False
                    instance.state = "InService"
                    return True
            if child.wait(0.05) is not None:
                break
        with self.backend.lock:
            if instance.state == "Pending":
                instance.state = "Failed"
        child.terminate(self.stop_grace)
        return False

    def _answers_ping(self, url: str) -> bool:
        try:
            return self._ping.get(f"{url}/ping").status_code == 200
        except (httpx.HTTPError, RuntimeError):  # RuntimeError: closed by a stop's drain
            return False

    def _retire(self, instances: list[Instance]) -> None:
        """Take ``instances`` out of routing, let them finish the requests they have (at most
        an invocation's 60 s), then stop them (SIGTERM; SIGKILL after `stop_grace`)."""
        with self.backend.lock:
            for instance in instances:
                if instance.state in ("Pending", "InService"):
                    instance.state = "Draining"
        deadline = time.monotonic() + INVOCATION_TIMEOUT_S
        while time.monotonic() < deadline and not self.closing.is_set():
            with self.backend.lock:
                if not any(instance.in_flight for instance in instances):
                    break
            time.sleep(0.02)
        for instance in instances:
            if instance.child is not None:
                instance.child.terminate(self.stop_grace)
        for instance in instances:
            if instance.child is not None:
                instance.child.wait()
            _close_log(instance)
        with self.backend.lock:
            for instance in instances:
                if instance.state == "Draining":
                    instance.state = "Stopped"
            for fleet in self._fleets_of(instances):
                fleet.instances = [i for i in fleet.instances if i not in instances]

    # -- replacing what dies -------------------------------------------------------------------

    def _watch(self) -> None:
        """Every `WATCH_EVERY_S`: an in-service instance whose process is gone leaves routing;
        an InService endpoint's variant with fewer live instances than desired gets new ones
        (after a pause that doubles, up to 30 s, while replacements keep failing)."""
        while not self.closing.wait(WATCH_EVERY_S):
            try:
                self._reconcile()
            except Exception:  # the watcher must outlive a bug in one round
                log.exception("the endpoint watcher failed")

    def _reconcile(self) -> None:
        replacements = []
        dead = []
        for endpoint in self.backend.all_endpoints():
            with self.backend.lock:
                for fleet in endpoint.fleets.values():
                    for instance in fleet.instances:
                        child = instance.child
                        if instance.state == "InService" and child and not child.running():
                            instance.state = "Failed"
                            dead.append((endpoint, instance))
                    fleet.instances = [i for i in fleet.instances if i.state != "Failed"]
                    if endpoint.status != "InService" or time.monotonic() < fleet.retry_at:
                        continue
                    live = [i for i in fleet.instances if i.state in ("Pending", "InService")]
                    missing = fleet.spec["DesiredInstanceCount"] - len(live)
                    if missing > 0:
                        replacements.append((endpoint, fleet, self._add_instances(fleet, missing)))
        for endpoint, instance in dead:
            log.warning(
                "endpoint %s: instance %s (pid %s) exited with %s; replacing it",
                endpoint.name,
                instance.id,
                instance.pid,
                instance.child.returncode,
            )
            _close_log(instance)
        for endpoint, fleet, added in replacements:
            self.workers.start(f"endpoint-{endpoint.name}", self._replace, endpoint, fleet, added)

    def _replace(self, endpoint: Endpoint, fleet: Fleet, added: list[Instance]) -> None:
        try:
            self._start_instances(endpoint, fleet, added)
        except DeploymentFailed as exc:
            self._retire(added)
            with self.backend.lock:
                fleet.failures += 1
                pause = min(REPLACE_BACKOFF_MAX_S, 2.0 ** (fleet.failures - 1))
                fleet.retry_at = time.monotonic() + pause
            log.warning("endpoint %s: a replacement instance failed: %s", endpoint.name, exc)
            return
        with self.backend.lock:
            fleet.failures = 0

    # -- places ------------------------------------------------------------------------------------

    def _endpoint_folder(self, endpoint: Endpoint) -> Path:
        return self.work_root / endpoint.region / endpoint.name

    def _fleet(self, endpoint: Endpoint, spec: dict) -> Fleet:
        with self.backend.lock:
            self._sequence += 1
            folder = self._endpoint_folder(endpoint) / f"{spec['VariantName']}-{self._sequence}"
        return Fleet(spec, folder)

    def _fleets_of(self, instances: list[Instance]) -> list[Fleet]:
        """The fleets (serving or pending, of any endpoint) that hold any of ``instances``."""
        wanted = {id(i) for i in instances}
        return [
            fleet
            for endpoint in self.backend.all_endpoints()
            for fleet in [*endpoint.fleets.values(), *endpoint.pending_fleets.values()]
            if any(id(i) in wanted for i in fleet.instances)
        ]

    def _remove_folders(self, fleets) -> None:
        for fleet in fleets:
            shutil.rmtree(fleet.folder, ignore_errors=True)

    def _require_changeable(self, endpoint: Endpoint) -> None:
        """Called under the lock: updates and rescaling need an InService endpoint."""
        if endpoint.status in IN_PROGRESS:
            raise _busy(endpoint)
        if endpoint.status != "InService":
            # "DeleteEndpoint is the only operation that can be performed on a failed
            # endpoint" (EndpointStatus, the service model); the wording is ours.
            raise EndpointRequestError(
                f'Cannot update endpoint "{endpoint.arn}" in status {endpoint.status}: only '
                "DeleteEndpoint can be performed on it."
            )


def _busy(endpoint: Endpoint) -> EndpointBusy:
    # [code] amazon-sagemaker-operator-for-k8s clientwrapper; AWS-SEMANTICS.md B1.
    return EndpointBusy(f'Cannot update in-progress endpoint "{endpoint.arn}".')


def _instances(fleets) -> list[Instance]:
    return [instance for fleet in fleets for instance in fleet.instances]


def _close_log(instance: Instance) -> None:
    writer = getattr(instance, "writer", None)
    if writer is not None:
        instance.writer = None
        with contextlib.suppress(Exception):
            writer.close()


def _log_group(endpoint: Endpoint) -> str:
    return LOG_GROUP_PREFIX + endpoint.name


def _instance_id() -> str:
    return "i-" + uuid.uuid4().hex[:17]
