"""Counting: may this invocation run, on which kind of concurrency, or is it throttled?

A `Lease` is taken before an execution environment is assigned and given back when the
invocation ends. The order is AWS's (LAM:provisioned-concurrency, LAM:configuration-concurrency;
AWS-SEMANTICS.md C1-C3; LocalStack's counting_service.py is the model):

1. a free slot of a READY provisioned concurrency config on the qualifier invoked (an alias's
   config, or its version's) -> ``provisioned-concurrency``;
2. a function with reserved concurrency R: on-demand while R - (its total provisioned) - (its
   on-demand running) > 0, else 429 ``ReservedFunctionConcurrentInvocationLimitExceeded``;
3. any other function: the account's unreserved pool, limit - (all reserved) - (provisioned of
   unreserved functions) - (on-demand running of unreserved functions) > 0, else 429
   ``ConcurrentInvocationLimitExceeded``.

Each function's counts change under that function's lock; the account pool's under the
account's lock (always taken after a function's). The provisioned configs live here too and
change under the same function lock, so a config put, replaced or deleted while invocations
hold its slots never miscounts: a lease keeps the config it counted against, and giving back a
slot of a replaced config changes nothing of the new one (LocalStack leaves that race as a
TODO).

The rules for configuring (PutFunctionConcurrency, PutProvisionedConcurrencyConfig) are here as
well, with AWS's messages, since they are the same arithmetic.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime

from ops.localcloud.wire import now

DEFAULT_ACCOUNT_LIMIT = 1000  # LAM:configuration-concurrency: the default account quota
MINIMUM_UNRESERVED = 100
LIMIT_VARIABLE = "DOGOPS_LAMBDA_CONCURRENCY_LIMIT"
PROVISIONED = "provisioned-concurrency"
ON_DEMAND = "on-demand"


def account_limit_from_environment() -> int:
    raw = os.environ.get(LIMIT_VARIABLE, "")
    if not raw:
        return DEFAULT_ACCOUNT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{LIMIT_VARIABLE} must be an integer, not {raw!r}") from None
    if value < 1:
        raise ValueError(f"{LIMIT_VARIABLE} must be at least 1, not {value}")
    return value


class Throttled(Exception):
    """AWS: 429 TooManyRequestsException with this Reason."""

    def __init__(self, reason: str):
        super().__init__("Rate Exceeded.")
        self.reason = reason


class Refused(Exception):
    """A configuration AWS refuses: InvalidParameterValueException (400) or, with
    ``conflict``, ResourceConflictException (409); the message is AWS's."""

    def __init__(self, message: str, conflict: bool = False):
        super().__init__(message)
        self.conflict = conflict


@dataclass
class ProvisionedConfig:
    """One PutProvisionedConcurrencyConfig: N environments kept initialised for a qualifier."""

    function: str
    qualifier: str  # an alias or a version, as put
    version: str  # what it runs: the alias's version when put
    requested: int
    status: str = "IN_PROGRESS"  # IN_PROGRESS | READY | FAILED
    reason: str | None = None
    allocated: int = 0  # environments initialised
    in_use: int = 0  # of them, serving an invocation now
    modified: datetime = field(default_factory=now)
    current: bool = True  # False once replaced or deleted: its slots count for nothing

    def describe(self) -> dict:
        # Available = initialised and not failed (AWS-SEMANTICS C3); busy ones stay available.
        document = {
            "RequestedProvisionedConcurrentExecutions": self.requested,
            "AvailableProvisionedConcurrentExecutions": self.allocated,
            "AllocatedProvisionedConcurrentExecutions": self.allocated,
            "Status": self.status,
            "LastModified": self.modified.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        }
        if self.reason:
            document["StatusReason"] = self.reason
        return document


@dataclass
class Lease:
    """The right to run one invocation, on one kind of concurrency."""

    function: str
    kind: str  # PROVISIONED | ON_DEMAND
    config: ProvisionedConfig | None = None
    spillover: bool = False  # the qualifier has a READY config, but all its slots were busy
    pooled: bool = False  # counted in the account's unreserved pool
    released: bool = False


@dataclass
class _Function:
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0  # on-demand invocations now
    configs: dict[str, ProvisionedConfig] = field(default_factory=dict)  # by qualifier

    def provisioned_total(self) -> int:
        return sum(config.requested for config in self.configs.values())


class Concurrency:
    """The counts of one region's account. ``reserved`` reads a function's reserved
    concurrency (kept on moto's function record), ``all_reserved`` every function's."""

    def __init__(self, limit: int, reserved, all_reserved):
        self.limit = limit
        self._reserved = reserved
        self._all_reserved = all_reserved
        self._functions: dict[str, _Function] = {}
        self._functions_lock = threading.Lock()
        self._account_lock = threading.Lock()
        self._unreserved_running = 0  # on-demand invocations of functions without reserved

    @property
    def minimum_unreserved(self) -> int:
        # The error messages of small accounts say [10] or [50]: the minimum is the smaller of
        # 100 and the account's limit (AWS-SEMANTICS.md C1; the formula is our reading).
        return min(MINIMUM_UNRESERVED, self.limit)

    def _function(self, name: str) -> _Function:
        with self._functions_lock:
            return self._functions.setdefault(name, _Function())

    # -- leases --------------------------------------------------------------------------------

    def lease(self, name: str, qualifiers: list[str], version: str) -> Lease:
        """A lease for invoking ``version`` of ``name`` by the first of ``qualifiers`` that
        has a READY provisioned config of that version with a free slot (the alias invoked,
        then its version), else on-demand; or `Throttled`."""
        function = self._function(name)
        with function.lock:
            spillover = False
            for qualifier in qualifiers:
                config = function.configs.get(qualifier)
                if config is None or config.status != "READY" or config.version != version:
                    continue
                if config.in_use < config.allocated:
                    config.in_use += 1
                    return Lease(name, PROVISIONED, config)
                spillover = True
            reserved = self._reserved(name)
            if reserved is not None:
                if reserved - function.provisioned_total() - function.running <= 0:
                    raise Throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
                function.running += 1
                return Lease(name, ON_DEMAND, spillover=spillover)
            with self._account_lock:
                if self._unreserved_pool() - self._unreserved_running <= 0:
                    raise Throttled("ConcurrentInvocationLimitExceeded")
                self._unreserved_running += 1
                function.running += 1
            return Lease(name, ON_DEMAND, spillover=spillover, pooled=True)

    def release(self, lease: Lease) -> None:
        function = self._function(lease.function)
        with function.lock:
            if lease.released:
                return
            lease.released = True
            if lease.kind == PROVISIONED:
                lease.config.in_use -= 1
                return
            function.running -= 1
            if lease.pooled:  # as it was taken, whatever the reserved setting is now
                with self._account_lock:
                    self._unreserved_running -= 1

    def _unreserved_pool(self) -> int:
        """The account's concurrency left to functions without reserved concurrency."""
        reserved = self._all_reserved()
        provisioned_unreserved = 0
        with self._functions_lock:
            functions = dict(self._functions)
        for name, function in functions.items():
            if name not in reserved:
                provisioned_unreserved += function.provisioned_total()
        return self.limit - sum(reserved.values()) - provisioned_unreserved

    def unreserved(self) -> int:
        """UnreservedConcurrentExecutions of GetAccountSettings."""
        with self._account_lock:
            return self._unreserved_pool()

    def running(self, name: str) -> int:
        """The function's invocations now, on-demand and provisioned (ConcurrentExecutions)."""
        function = self._function(name)
        with function.lock:
            return function.running + sum(c.in_use for c in function.configs.values())

    def total_running(self) -> int:
        """Every function's invocations now (the region-wide ConcurrentExecutions)."""
        with self._functions_lock:
            functions = list(self._functions.values())
        return sum(f.running + sum(c.in_use for c in f.configs.values()) for f in functions)

    def unreserved_running(self) -> int:
        """On-demand invocations of functions without reserved concurrency now."""
        with self._account_lock:
            return self._unreserved_running

    def provisioned_running(self, name: str, qualifier: str) -> tuple[int, int]:
        """(in use, allocated) of the config on ``qualifier`` ((0, 0) without one)."""
        function = self._function(name)
        with function.lock:
            config = function.configs.get(qualifier)
            return (config.in_use, config.allocated) if config else (0, 0)

    # -- configuration -------------------------------------------------------------------------

    def reserve(self, name: str, value: int | None, store) -> None:
        """Set ``name``'s reserved concurrency to ``value`` (None: no reservation) through
        ``store``, or `Refused` with AWS's message. Checked and stored under the function's
        lock and the account's, so two reservations at once cannot both pass the check, and
        no lease or provisioned config sees half of it."""
        function = self._function(name)
        with function.lock, self._account_lock:
            if value is not None:
                self._check_reserved(name, value, function)
            store(value)

    def _check_reserved(self, name: str, value: int, function: _Function) -> None:
        provisioned = function.provisioned_total()
        if value < provisioned:
            # Leading and doubled spaces as AWS writes them (AWS-SEMANTICS.md C1).
            raise Refused(
                f" ReservedConcurrentExecutions  {value} should not be lower than function's "
                f"total provisioned concurrency [{provisioned}]."
            )
        others = {k: v for k, v in self._all_reserved().items() if k != name}
        with self._functions_lock:
            functions = dict(self._functions)
        provisioned_unreserved = sum(
            f.provisioned_total() for n, f in functions.items() if n not in others and n != name
        )
        left = self.limit - sum(others.values()) - value - provisioned_unreserved
        if left < self.minimum_unreserved:
            raise Refused(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of "
                f"[{self.minimum_unreserved}]."
            )

    def put_config(self, name: str, qualifier: str, version: str, requested: int):
        """Put (or replace) the provisioned config on ``qualifier``: the new config and the
        one it replaces (None), or `Refused` with AWS's message."""
        function = self._function(name)
        with function.lock:
            other = [c for q, c in function.configs.items() if q != qualifier]
            for config in other:
                if config.version == version:
                    raise Refused(
                        "Alias can't be used for Provisioned Concurrency configuration on an "
                        "already Provisioned version"
                        if qualifier != version
                        else "Version is pointed by a Provisioned Concurrency alias",
                        conflict=True,
                    )
            total = sum(c.requested for c in other) + requested
            reserved = self._reserved(name)
            if reserved is not None:
                if total > reserved:
                    raise Refused(
                        "Requested Provisioned Concurrency should not be greater than the "
                        "reservedConcurrentExecution for function"
                    )
            else:
                with self._account_lock:
                    pool = self._unreserved_pool() + function.provisioned_total() - total
                if pool < self.minimum_unreserved:
                    raise Refused(
                        "Specified ConcurrentExecutions for function decreases account's "
                        "UnreservedConcurrentExecution below its minimum value of "
                        f"[{self.minimum_unreserved}]."
                    )
            # The config it replaces counts for nothing from now on (its busy environments
            # finish, its idle ones are retired once the new set is READY); meanwhile
            # invocations run on-demand, as on AWS while a config is IN_PROGRESS.
            old = function.configs.get(qualifier)
            if old is not None:
                old.current = False
            config = ProvisionedConfig(name, qualifier, version, requested)
            function.configs[qualifier] = config
            return config, old

    def get_config(self, name: str, qualifier: str) -> ProvisionedConfig | None:
        function = self._function(name)
        with function.lock:
            return function.configs.get(qualifier)

    def configs(self, name: str) -> list[ProvisionedConfig]:
        function = self._function(name)
        with function.lock:
            return sorted(function.configs.values(), key=lambda c: c.qualifier)

    def delete_config(self, name: str, qualifier: str) -> ProvisionedConfig | None:
        function = self._function(name)
        with function.lock:
            config = function.configs.pop(qualifier, None)
            if config is not None:
                config.current = False
            return config

    def forget(self, name: str) -> list[ProvisionedConfig]:
        """The function was deleted: its configs go (returned, to stop their environments)."""
        with self._functions_lock:
            function = self._functions.pop(name, None)
        if function is None:
            return []
        with function.lock:
            for config in function.configs.values():
                config.current = False
            return list(function.configs.values())

    def set_allocated(self, config: ProvisionedConfig, allocated: int, status: str, reason=None):
        """The environments of ``config`` report: how many are initialised, and its status."""
        function = self._function(config.function)
        with function.lock:
            config.allocated = allocated
            config.status = status
            config.reason = reason
            config.modified = now()
