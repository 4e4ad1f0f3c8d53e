"""The scheduler's input slots, driven with test_pool's fake containers: several inputs
per container under ``@coldsnap.concurrent``, ``target_inputs``, and ``Pool.lease`` (the
slot the HTTP gateway holds while it proxies a request)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from coldsnap.server.boot import Attach, Boot
from coldsnap.server.errors import ApiError
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.pool import Lease, Pool
from coldsnap.server.worker import BootFailed
from tests.server import test_pool
from tests.server.test_pool import WAIT_S, FakeBooter, answer, submit, wait_until

# test_pool's fixtures: fake containers, a pool of them.
booter, db, make_pool = test_pool.booter, test_pool.db, test_pool.make_pool


def inputs_per_container(pool: Pool) -> list[int]:
    return sorted(c["inputs"] for c in pool.stats()["containers"])


def test_n_held_calls_share_one_container_when_max_inputs_allows(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool(max_inputs=3)
    booter.calls_may_end.clear()
    calls = [submit(pool, str(i).encode()) for i in range(3)]
    wait_until(lambda: inputs_per_container(pool) == [3], "3 inputs in one container")
    assert booter.started == 1
    fourth = submit(pool, b"4")  # no free slot: a second container
    wait_until(lambda: booter.started == 2, "a second boot")
    booter.calls_may_end.set()
    assert [answer(c) for c in calls] == [b"0", b"1", b"2"] and answer(fourth) == b"4"
    assert pool.stats()["calls_ok"] == 4


def test_target_inputs_boots_for_target_and_fills_to_max_meanwhile(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool(max_inputs=4, target_inputs=2)
    booter.calls_may_end.clear()
    booter.boots_may_end.clear()
    calls = [submit(pool) for _ in range(4)]
    assert pool.stats()["booting"] == 2  # 4 inputs / target 2
    booter.boots_may_end.set()
    wait_until(lambda: sum(inputs_per_container(pool)) == 4, "all 4 inputs running")
    assert max(inputs_per_container(pool)) <= 4
    booter.calls_may_end.set()
    for call in calls:
        answer(call)
    assert booter.started == 2


def test_a_lease_boots_a_container_holds_a_slot_and_release_counts_it(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool(max_inputs=2, scaledown_window=0.2)
    lease = pool.lease(timeout_s=WAIT_S)
    assert isinstance(lease, Lease) and lease.worker is booter.workers[0]
    assert not lease.lost
    assert pool.stats()["containers"][0]["state"] == "busy"
    assert answer(submit(pool, b"beside")) == b"beside"  # the other slot
    assert booter.started == 1
    time.sleep(0.5)  # past the scaledown window: a held slot keeps the container
    assert len(pool.stats()["containers"]) == 1
    lease.release()
    lease.release()  # idempotent
    stats = pool.stats()
    assert (stats["http_requests"], stats["calls_ok"]) == (1, 1)
    wait_until(lambda: not pool.stats()["containers"], "scale-down once released")


def test_a_lease_waits_its_turn_and_times_out_leaving_the_queue(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool(max_containers=1)
    booter.calls_may_end.clear()
    running = submit(pool)
    wait_until(lambda: booter.workers and booter.workers[0].call is running, "the call")
    with pytest.raises(ApiError) as info:
        pool.lease(timeout_s=0.2)
    assert info.value.kind == "timeout"
    assert "had a free input slot within 0.2 s" in info.value.message
    assert pool.stats()["queued"] == 0
    got: list[Lease] = []
    waiter = threading.Thread(target=lambda: got.append(pool.lease(timeout_s=WAIT_S)))
    waiter.start()
    booter.calls_may_end.set()  # the call ends: its slot goes to the lease
    waiter.join(WAIT_S)
    assert got and got[0].worker is booter.workers[0]
    answer(running)
    got[0].release()


def test_a_lease_hears_of_a_drain_a_stop_and_a_lost_container(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool(max_inputs=2)
    lease = pool.lease(timeout_s=WAIT_S)
    booter.workers[0].die()
    assert lease.lost
    lease.release()  # its container left: nothing to free, still counted
    assert pool.stats()["http_requests"] == 1
    booter.boots_may_end.clear()
    errors: list[ApiError] = []

    def lease_and_fail() -> None:
        try:
            pool.lease(timeout_s=WAIT_S)
        except ApiError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=lease_and_fail)
    waiter.start()
    wait_until(lambda: pool.stats()["queued"] == 1, "the lease to queue")
    pool.stop("the server is shutting down")
    waiter.join(WAIT_S)
    assert [e.kind for e in errors] == ["unavailable"]
    with pytest.raises(ApiError, match="is draining"):
        pool.lease(timeout_s=1)


class FailingBooter(FakeBooter):
    def boot(self, fn: FunctionSpec, attach: Attach, stopping: Callable[[], bool]) -> Boot:
        raise BootFailed("container cs-x failed to boot in import: ImportError: no torch")


def test_a_lease_fails_with_the_boot(make_pool: Callable[..., Pool], booter: Any,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeBooter, "boot", FailingBooter.boot)
    pool = make_pool()
    with pytest.raises(ApiError) as info:
        pool.lease(timeout_s=WAIT_S)
    assert info.value.kind == "boot_failed" and "no torch" in info.value.message


def test_drain_lets_every_running_input_finish_then_the_container_leaves_cleanly(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool(max_inputs=3)
    booter.calls_may_end.clear()
    calls = [submit(pool, str(i).encode()) for i in range(3)]
    wait_until(lambda: inputs_per_container(pool) == [3], "3 inputs running")
    pool.drain()
    time.sleep(0.2)
    assert not pool.finished and inputs_per_container(pool) == [3]  # nobody left early
    booter.calls_may_end.set()
    assert [answer(c) for c in calls] == [b"0", b"1", b"2"]
    wait_until(lambda: pool.finished, "the drained pool to finish")
    assert [w.ended_by for w in booter.workers] == ["shutdown"]


def test_a_container_dying_under_several_inputs_fails_them_all_and_is_replaced(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool(max_inputs=3)
    booter.calls_may_end.clear()
    calls = [submit(pool, b"die"), submit(pool, b"a"), submit(pool, b"b")]
    wait_until(lambda: inputs_per_container(pool) == [3], "3 inputs running")
    booter.calls_may_end.set()  # "die" kills the container; the fake ends the others
    for call in calls:
        assert call.done.wait(WAIT_S) and call.outcome is not None
    dead = [c for c in calls if not c.outcome.ok]  # type: ignore[union-attr]
    assert dead and all(c.outcome.error.kind == "container_died"  # type: ignore[union-attr]
                        for c in dead)
    assert answer(submit(pool, b"next")) == b"next"
    assert booter.started == 2  # the dead one took no more inputs
    wait_until(lambda: booter.workers[0].ended_by == "kill", "the dead container's kill")
