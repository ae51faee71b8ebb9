"""Assignment: which execution environment takes an invocation that holds a lease.

Environments are pooled by what they run (function, version, code and configuration:
`FunctionSpec.key`) and by kind: on-demand ones are shared by every on-demand lease of that
key, provisioned ones belong to their `ProvisionedConfig`. An idle one is reused (a warm
start); otherwise a new one starts (a cold start). On-demand environments idle longer than
``DOGOPS_LAMBDA_IDLE_S`` (default 300 s) are reaped; provisioned ones stay while their config
does.

A provisioned config's environments are started when it is put (`provision`): its status is
IN_PROGRESS until all are initialised, then READY; an environment whose init fails is tried
again, up to 6 times as AWS does, then the config is FAILED with ``FUNCTION_ERROR_INIT_FAILURE``
(AWS-SEMANTICS.md C3). Replacing a config starts the new set before the old one is retired.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from ops.localcloud.identity import aws_environment
from ops.localcloud.lambda_.concurrency import ON_DEMAND, PROVISIONED, Concurrency
from ops.localcloud.lambda_.environments import Environment
from ops.localcloud.lambda_.functions import FunctionSpec, TaskRoots
from ops.localcloud.supervisor import SupervisorClosed

log = logging.getLogger("dogops.localcloud")
IDLE_VARIABLE = "DOGOPS_LAMBDA_IDLE_S"
DEFAULT_IDLE_S = 300.0
INIT_ATTEMPTS = 6
INIT_FAILURE = "FUNCTION_ERROR_INIT_FAILURE"


class Environments:
    def __init__(self, context, roots: TaskRoots, concurrency: dict[str, Concurrency]):
        self.context = context
        self.supervisor = context.supervisor
        self.roots = roots
        self.concurrency = concurrency  # by region
        self.idle_s = idle_seconds()
        self._lock = threading.Lock()
        self._idle: dict[tuple, list[Environment]] = {}
        self._all: set[Environment] = set()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap, daemon=True, name="lambda-reaper")
        self._reaper.start()

    def logs(self, region: str):
        return self.context.moto.client("logs", region)

    # -- assignment ----------------------------------------------------------------------------

    def take_idle(self, spec: FunctionSpec, kind: str, config=None) -> Environment | None:
        """An idle environment for one invocation (a warm start), Busy from now on; None if
        there is none: then `start` one (a cold start)."""
        pool = _pool(spec, kind, config)
        with self._lock:
            idle = self._idle.get(pool, [])
            while idle:
                environment = idle.pop()
                if environment.claim():
                    return environment
        return None

    def start(self, spec: FunctionSpec, kind: str, config=None) -> Environment:
        """A new environment for one invocation, Busy once initialised (wait on its
        ``ready``). It blocks for the spawn (tens of ms): call it off the event loop."""
        return self._start(spec, kind, config)

    def release(self, environment: Environment) -> None:
        """The invocation is over: the environment waits for the next, or goes."""
        with self._lock:
            keep = not environment.retire and not self._closed.is_set() and environment.set_idle()
            if keep:
                pool = _pool(environment.spec, environment.kind, environment.config)
                self._idle.setdefault(pool, []).append(environment)
        if not keep:
            environment.stop()

    def discard(self, environment: Environment) -> None:
        """The environment's process has ended (called by the environment)."""
        with self._lock:
            self._all.discard(environment)
            pool = _pool(environment.spec, environment.kind, environment.config)
            if environment in self._idle.get(pool, []):
                self._idle[pool].remove(environment)

    def _start(self, spec: FunctionSpec, kind: str, config) -> Environment:
        environment = Environment(self, spec, kind, config)
        with self._lock:
            if self._closed.is_set():
                raise SupervisorClosed("the local cloud is stopping")
            self._all.add(environment)
        try:
            task_root = self.roots.unpack(spec)
            environment.start(task_root, self._variables(spec, task_root))
        except Exception:
            with self._lock:
                self._all.discard(environment)
            raise
        return environment

    def _variables(self, spec: FunctionSpec, task_root: Path) -> dict[str, str]:
        """The environment's variables (LAM:configuration-envvars): the function's own, then
        the reserved ones Lambda sets, then the local cloud's endpoint, so that the
        handler's boto3 calls reach the local cloud."""
        # Credentials standing for the function's execution role, as Lambda gives them.
        credentials = self.context.moto.client("sts", spec.region).assume_role(
            RoleArn=spec.role, RoleSessionName=spec.name[:64].ljust(2, "-")
        )["Credentials"]
        return {
            **spec.environment,
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(task_root),
            "LAMBDA_TASK_ROOT": str(task_root),
            "LAMBDA_RUNTIME_DIR": str(task_root),
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            **aws_environment(self.context.url, spec.region, credentials),
        }

    # -- provisioned concurrency ---------------------------------------------------------------

    def provision(self, spec: FunctionSpec, config, replaced=None) -> None:
        """Initialise ``config``'s environments in the background; retire ``replaced``'s once
        the new set is READY (or at once if it fails)."""
        threading.Thread(
            target=self._provision,
            args=(spec, config, replaced),
            daemon=True,
            name=f"provision-{spec.name}",
        ).start()

    def _provision(self, spec: FunctionSpec, config, replaced) -> None:
        concurrency = self.concurrency[spec.region]
        ready: list[Environment] = []
        failure = None
        for _ in range(config.requested):
            environment, failure = self._initialise(spec, config)
            if environment is None:
                break
            ready.append(environment)
        if failure is not None:
            for environment in ready:
                environment.stop()
            concurrency.set_allocated(config, 0, "FAILED", failure)
            if replaced is not None:
                self.retire(replaced)
            return
        with self._lock:
            # Decided under the lock `retire` takes: a config deleted or replaced meanwhile,
            # or a local cloud stopping, gets no pool (its environments would serve nobody).
            wanted = config.current and not self._closed.is_set() and len(ready) == config.requested
            if wanted:
                for environment in ready:
                    environment.set_idle()
                self._idle.setdefault(_pool(spec, PROVISIONED, config), []).extend(ready)
        if not wanted:
            for environment in ready:
                environment.stop()
            return
        concurrency.set_allocated(config, len(ready), "READY")
        if replaced is not None:
            self.retire(replaced)

    def _initialise(self, spec: FunctionSpec, config) -> tuple[Environment | None, str | None]:
        for attempt in range(1, INIT_ATTEMPTS + 1):
            if not config.current or self._closed.is_set():
                return None, None
            try:
                environment = self._start(spec, PROVISIONED, config)
            except SupervisorClosed:
                return None, None
            if environment.ready.wait(environment.init_limit()) and environment.ready.value:
                return environment, None  # Busy: in no pool until the whole set is up
            environment.stop()
            log.info(
                "%s: provisioned environment failed to initialise (attempt %d of %d)",
                spec.name,
                attempt,
                INIT_ATTEMPTS,
            )
        return None, INIT_FAILURE

    def retire(self, config) -> None:
        """Stop ``config``'s environments: idle ones now, busy ones when their invocation ends."""
        with self._lock:
            mine = [e for e in self._all if e.config is config]
            for environment in mine:
                environment.retire = True
            pool = [p for p in self._idle if len(p) == 3 and p[2] == id(config)]
            idle = [e for p in pool for e in self._idle.pop(p)]
        for environment in idle:
            environment.stop()

    def stop_function(self, region: str, name: str) -> None:
        with self._lock:
            doomed = [e for e in self._all if (e.spec.region, e.spec.name) == (region, name)]
        for environment in doomed:
            environment.retire = True
            if environment.state != "Busy":
                environment.stop()

    # -- housekeeping --------------------------------------------------------------------------

    def alive(self) -> list[Environment]:
        with self._lock:
            return [e for e in self._all if e.alive()]

    def _reap(self) -> None:
        while not self._closed.wait(min(1.0, self.idle_s / 2)):
            cutoff = time.monotonic() - self.idle_s
            with self._lock:
                stale = []
                for pool, idle in self._idle.items():
                    if pool[1] != ON_DEMAND:
                        continue
                    keep = [e for e in idle if e.last_used >= cutoff]
                    stale += [e for e in idle if e.last_used < cutoff]
                    self._idle[pool] = keep
            for environment in stale:
                log.info("lambda: reaping idle environment %s", environment.stream)
                environment.stop()

    def close(self) -> None:
        """No environment starts from now on; every one is stopped (the supervisor's stop_all
        does the signalling; this ends their bookkeeping)."""
        self._closed.set()
        with self._lock:
            everything = list(self._all)
        for environment in everything:
            environment.stop()


def idle_seconds() -> float:
    raw = os.environ.get(IDLE_VARIABLE, "")
    try:
        value = float(raw) if raw else DEFAULT_IDLE_S
    except ValueError:
        raise ValueError(f"{IDLE_VARIABLE} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise ValueError(f"{IDLE_VARIABLE} must be more than 0 seconds, not {raw!r}")
    return value


def _pool(spec: FunctionSpec, kind: str, config) -> tuple:
    return (spec.key, kind, id(config)) if kind == PROVISIONED else (spec.key, kind)
