"""Counting (ops.localcloud.lambda_.concurrency) without processes: the lease order, the
throttle reasons, AWS's rules for reserving, and provisioned configs changing while their slots
are held."""

from __future__ import annotations

import threading

import pytest

from ops.localcloud.lambda_.concurrency import (
    ON_DEMAND,
    PROVISIONED,
    Concurrency,
    Refused,
    Throttled,
)


def account(limit: int = 1000, **reserved: int) -> tuple[Concurrency, dict[str, int]]:
    table = dict(reserved)
    return Concurrency(limit, table.get, lambda: dict(table)), table


def ready(concurrency: Concurrency, name: str, qualifier: str, version: str, count: int):
    config, _ = concurrency.put_config(name, qualifier, version, count)
    concurrency.set_allocated(config, count, "READY")
    return config


def test_reserved_concurrency_caps_on_demand_and_names_the_reason():
    concurrency, _ = account(f=2)
    leases = [concurrency.lease("f", [], "$LATEST") for _ in range(2)]
    with pytest.raises(Throttled) as throttled:
        concurrency.lease("f", [], "$LATEST")
    assert throttled.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
    concurrency.release(leases[0])
    concurrency.release(leases[0])  # twice: counted once
    assert concurrency.lease("f", [], "$LATEST").kind == ON_DEMAND
    with pytest.raises(Throttled):
        concurrency.lease("f", [], "$LATEST")


def test_the_account_pool_is_the_limit_less_what_is_reserved():
    concurrency, _ = account(limit=5, big=3)
    held = [concurrency.lease("small", [], "$LATEST") for _ in range(2)]
    with pytest.raises(Throttled) as throttled:
        concurrency.lease("other", [], "$LATEST")
    assert throttled.value.reason == "ConcurrentInvocationLimitExceeded"
    assert concurrency.unreserved_running() == 2
    for lease in held:
        concurrency.release(lease)
    assert concurrency.unreserved_running() == 0
    assert concurrency.unreserved() == 2


def test_provisioned_slots_first_then_spillover_within_reserved():
    concurrency, _ = account(f=3)
    ready(concurrency, "f", "live", "1", 1)
    first = concurrency.lease("f", ["live", "1"], "1")
    assert first.kind == PROVISIONED
    second = concurrency.lease("f", ["live", "1"], "1")
    assert (second.kind, second.spillover) == (ON_DEMAND, True)
    # reserved 3 - provisioned 1 - on-demand 1 = 1 left, then none.
    concurrency.lease("f", ["live", "1"], "1")
    with pytest.raises(Throttled):
        concurrency.lease("f", ["live", "1"], "1")
    # $LATEST never uses the alias's config; reserved == provisioned + running: throttled.
    with pytest.raises(Throttled):
        concurrency.lease("f", [], "$LATEST")


def test_a_config_serves_only_the_version_it_runs():
    concurrency, _ = account()
    ready(concurrency, "f", "live", "1", 1)
    lease = concurrency.lease("f", ["live", "2"], "2")
    assert lease.kind == ON_DEMAND


def test_replacing_a_config_while_its_slots_are_held_never_miscounts():
    concurrency, _ = account(f=10)
    old = ready(concurrency, "f", "live", "1", 2)
    held = [concurrency.lease("f", ["live"], "1") for _ in range(2)]
    assert all(lease.config is old for lease in held)
    new = ready(concurrency, "f", "live", "1", 3)
    assert not old.current
    for lease in held:  # given back to the config they counted against
        concurrency.release(lease)
    assert (new.in_use, old.in_use) == (0, 0)
    leases = [concurrency.lease("f", ["live"], "1") for _ in range(3)]
    assert all(lease.config is new for lease in leases)
    assert concurrency.lease("f", ["live"], "1").spillover


def test_leases_from_many_threads_never_exceed_reserved():
    concurrency, _ = account(f=7)
    granted, throttled, lock = [], [], threading.Lock()
    barrier = threading.Barrier(16)

    def take() -> None:
        barrier.wait()
        try:
            lease = concurrency.lease("f", [], "$LATEST")
        except Throttled:
            with lock:
                throttled.append(1)
        else:
            with lock:
                granted.append(lease)

    threads = [threading.Thread(target=take) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(granted), len(throttled)) == (7, 9)


def test_reserving_keeps_the_minimum_unreserved_with_aws_messages():
    concurrency, table = account(limit=1000, other=300)
    concurrency.reserve("f", 600, lambda value: table.__setitem__("f", value))
    assert table["f"] == 600
    with pytest.raises(Refused) as refused:
        concurrency.reserve("f", 601, lambda value: table.__setitem__("f", value))
    assert table["f"] == 600  # refused: nothing stored
    assert str(refused.value) == (
        "Specified ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [100]."
    )
    small, _ = account(limit=50)
    with pytest.raises(Refused) as refused:
        small.reserve("f", 1, lambda value: None)
    assert str(refused.value).endswith("below its minimum value of [50].")

    table["f"] = 5
    ready(concurrency, "f", "live", "1", 4)
    with pytest.raises(Refused) as refused:
        concurrency.reserve("f", 3, lambda value: None)
    assert str(refused.value) == (
        " ReservedConcurrentExecutions  3 should not be lower than function's total "
        "provisioned concurrency [4]."
    )


def test_provisioned_configs_are_refused_as_aws_refuses_them():
    concurrency, table = account(limit=1000, f=2)
    with pytest.raises(Refused) as refused:
        concurrency.put_config("f", "live", "1", 3)
    assert "should not be greater than the reservedConcurrentExecution" in str(refused.value)
    ready(concurrency, "f", "live", "1", 1)
    with pytest.raises(Refused) as conflict:
        concurrency.put_config("f", "1", "1", 1)
    assert conflict.value.conflict
    assert str(conflict.value) == "Version is pointed by a Provisioned Concurrency alias"
    del table["f"]
    with pytest.raises(Refused) as refused:
        concurrency.put_config("g", "2", "2", 901)
    assert "below its minimum value of [100]" in str(refused.value)


def test_the_idle_time_of_environments_must_be_positive(monkeypatch):
    from ops.localcloud.lambda_.assignment import DEFAULT_IDLE_S, IDLE_VARIABLE, idle_seconds

    monkeypatch.delenv(IDLE_VARIABLE, raising=False)
    assert idle_seconds() == DEFAULT_IDLE_S
    monkeypatch.setenv(IDLE_VARIABLE, "2.5")
    assert idle_seconds() == 2.5
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv(IDLE_VARIABLE, bad)
        with pytest.raises(ValueError, match=IDLE_VARIABLE):
            idle_seconds()
