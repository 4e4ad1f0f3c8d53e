"""The scheduler's scaling decisions, driven with fake containers: no engine, no processes.

``FakeBooter`` stands in for ``Booter``: each boot attaches a ``FakeWorker`` through
the pool's own ``_attach`` (as the real booter does) and can be held at a gate, so a
test sees boots in progress. A fake container answers a call with its arguments, or
dies on ``b"die"``; calls can be held too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from coldsnap.server import pool as pool_module
from coldsnap.server.boot import Attach, Boot
from coldsnap.server.calls import Call
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.logs import LogBook
from coldsnap.server.pool import Pool, PoolContext
from coldsnap.server.worker import CallEnd, CallResult
from coldsnap.settings import Settings
from coldsnap.wire.image_spec import ImageSpec
from coldsnap.wire.options import FunctionOptions

WAIT_S = 5.0  # what a wait that should succeed at once gets before the test fails


class FakeWorker:
    """What the pool uses of a Worker; a fake container that runs calls in no time."""

    def __init__(self, container: Any, log_line: Any,
                 on_exit: Callable[[FakeWorker], None], **_: Any) -> None:
        self.booter: FakeBooter = container.booter
        self.container = container  # its host: None, one host
        self.id = container.id
        self.call: Call | None = None
        self.calls_served = 0
        self.boot_id = 0
        self.boot_timings: dict[str, float] = {}
        self.idle_since = time.monotonic()
        self.exited = threading.Event()
        self.ended_by = ""  # "shutdown" or "kill"
        self._on_exit = on_exit

    @property
    def alive(self) -> bool:
        time.sleep(self.booter.alive_check_s)  # a real one asks the engine (waitpid)
        return not self.exited.is_set()

    def note(self, text: str, to_caller: bool = True, **_: Any) -> None:
        pass

    def lease_started(self) -> None:  # a real one reads its pipe for the request's calls
        pass

    def lease_ended(self) -> None:
        pass

    def run_call(self, call: Call) -> CallResult:
        call.attempts += 1
        self.call = call
        try:
            assert self.booter.calls_may_end.wait(WAIT_S), "a held call was never let go"
            if call.args == b"die":
                self.exited.set()
                return CallResult(CallEnd.DIED, message=f"container {self.id} died")
            return CallResult(CallEnd.RESULT, ok=True, blob=call.args)
        finally:
            self.call = None
            self.calls_served += 1
            self.idle_since = time.monotonic()

    def die(self) -> None:
        """The container exits on its own, idle (the log pump's EOF in a real Worker)."""
        self.exited.set()
        self._on_exit(self)

    def shutdown(self) -> None:
        self.ended_by = self.ended_by or "shutdown"
        self.exited.set()

    def kill(self) -> None:
        self.ended_by = self.ended_by or "kill"
        self.exited.set()


class FakeBooter:
    """``Booter.boot`` without an engine: every boot succeeds once ``boots_may_end``."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.engine = type("Engine", (), {"name": "fake"})()
        self.boots_may_end = threading.Event()
        self.calls_may_end = threading.Event()
        self.boots_may_end.set()
        self.calls_may_end.set()
        self.workers: list[FakeWorker] = []
        self.alive_check_s = 0.0
        self._lock = threading.Lock()

    def boot(self, fn: FunctionSpec, attach: Attach, stopping: Callable[[], bool]) -> Boot:
        with self._lock:
            container = SimpleNamespace(id=f"cs-{len(self.workers)}", booter=self, host=None,
                                        draining=False)
            worker: Any = attach(container)  # type: ignore[arg-type]
            self.workers.append(worker)
        assert self.boots_may_end.wait(WAIT_S), "a held boot was never let go"
        return Boot(worker, "plain", {})

    @property
    def started(self) -> int:
        with self._lock:
            return len(self.workers)


class FakeDB:
    """The two writes a pool makes; the first-input one as slow as a busy disk's."""

    def __init__(self) -> None:
        self.add_boot_failures = 0  # how many add_boot calls fail, from now on

    def add_boot(self, *args: Any) -> int:
        if self.add_boot_failures:
            self.add_boot_failures -= 1
            raise OSError(28, "No space left on device")
        return 1

    def update_boot_timings(self, boot_id: int, timings: dict[str, float]) -> None:
        time.sleep(0.05)


@pytest.fixture
def booter(monkeypatch: pytest.MonkeyPatch) -> FakeBooter:
    monkeypatch.setattr(pool_module, "Worker", FakeWorker)
    return FakeBooter()


@pytest.fixture
def db() -> FakeDB:
    return FakeDB()


@pytest.fixture
def make_pool(booter: FakeBooter, db: FakeDB) -> Iterator[Callable[..., Pool]]:
    pools: list[Pool] = []

    def make(**options: Any) -> Pool:
        fn = FunctionSpec(app="app", version="v" * 40, tag="f", kind="function", methods=(),
                          options=FunctionOptions(**options), source=b"", image_spec=ImageSpec())
        ctx = PoolContext(booter, db, LogBook(echo=False),  # type: ignore[arg-type]
                          lambda header, blob: ({"ok": False}, None))
        pools.append(Pool(fn, ctx))
        return pools[-1]

    yield make
    booter.boots_may_end.set()
    booter.calls_may_end.set()
    for pool in pools:
        pool.stop("the test is over")
        pool.kill()
        wait_until(lambda p=pool: p.finished, "the pool to finish")  # type: ignore[misc]


def wait_until(predicate: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def submit(pool: Pool, args: bytes = b"x") -> Call:
    call = Call("app", "f", None, args, timeout_s=10, retries=0)
    pool.submit(call)
    return call


def answer(call: Call) -> bytes | None:
    assert call.done.wait(WAIT_S), f"call {call.id} got no answer"
    assert call.outcome is not None
    assert call.outcome.ok, call.outcome.error
    return call.outcome.blob


def idle_containers(pool: Pool) -> int:
    return sum(c["state"] == "idle" for c in pool.stats()["containers"])


def test_a_queued_call_starts_a_boot_and_is_answered(make_pool: Callable[..., Pool],
                                                     booter: FakeBooter) -> None:
    pool = make_pool()
    assert booter.started == 0  # no call, no min_containers: nothing boots
    booter.boots_may_end.clear()
    call = submit(pool, b"hello")
    stats = pool.stats()
    assert (stats["queued"], stats["booting"]) == (1, 1)
    booter.boots_may_end.set()
    assert answer(call) == b"hello"
    stats = pool.stats()
    assert (stats["booting"], stats["boots_ok"], stats["calls_ok"]) == (0, 1, 1)
    assert booter.started == 1


@pytest.mark.parametrize(("queued", "max_containers", "boots"), [(2, 3, 2), (5, 3, 3)])
def test_queued_calls_start_one_boot_each_up_to_max_containers(
    make_pool: Callable[..., Pool], booter: FakeBooter,
    queued: int, max_containers: int, boots: int,
) -> None:
    pool = make_pool(max_containers=max_containers)
    booter.boots_may_end.clear()
    calls = [submit(pool, str(i).encode()) for i in range(queued)]
    assert pool.stats()["booting"] == boots
    wait_until(lambda: booter.started == boots, f"{boots} boots")
    booter.boots_may_end.set()
    assert [answer(call) for call in calls] == [str(i).encode() for i in range(queued)]
    assert booter.started == boots  # the extra calls waited for a container: no more boots
    assert pool.stats()["boots_ok"] == boots


def test_an_idle_container_is_reused_rather_than_booting_another(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool()
    for i in range(5):  # each call as soon as the last one was answered
        assert answer(submit(pool, str(i).encode())) == str(i).encode()
    assert booter.started == 1
    assert pool.stats()["calls_ok"] == 5


def test_a_busy_container_is_not_idle_a_second_call_boots(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool()
    booter.calls_may_end.clear()
    first = submit(pool)
    wait_until(lambda: booter.workers and booter.workers[0].call is first, "the first call")
    second = submit(pool)
    wait_until(lambda: booter.started == 2, "a second boot")
    booter.calls_may_end.set()
    answer(first), answer(second)
    assert booter.started == 2


def test_min_containers_stay_warm_and_come_back_after_a_death(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool(min_containers=2)
    wait_until(lambda: idle_containers(pool) == 2, "2 warm containers")
    assert booter.started == 2
    booter.workers[0].die()
    wait_until(lambda: booter.started == 3, "a replacement boot")
    wait_until(lambda: idle_containers(pool) == 2, "2 warm containers again")
    assert answer(submit(pool)) == b"x"
    assert booter.started == 3  # a warm container took the call


def test_a_container_that_dies_in_a_call_is_replaced_for_the_next(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool()
    dying = submit(pool, b"die")
    assert dying.done.wait(WAIT_S) and dying.outcome is not None
    assert dying.outcome.error is not None and dying.outcome.error.kind == "container_died"
    assert answer(submit(pool)) == b"x"
    assert booter.started == 2
    stats = pool.stats()
    assert (stats["calls_failed"], stats["calls_ok"]) == (1, 1)


def test_idle_containers_scale_down_after_the_window_but_keep_min_containers(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool(min_containers=1, scaledown_window=0.2)
    booter.calls_may_end.clear()
    calls = [submit(pool) for _ in range(3)]
    wait_until(lambda: booter.started == 3, "3 boots")
    booter.calls_may_end.set()
    for call in calls:
        answer(call)
    # The three windows end together; each container checks it is alive on its way out,
    # long enough for the others to decide too: still only two may go.
    booter.alive_check_s = 0.05
    wait_until(lambda: len(pool.stats()["containers"]) == 1, "scale-down to min_containers")
    time.sleep(0.3)  # past another window: the last one stays
    assert len(pool.stats()["containers"]) == 1
    assert sorted(w.ended_by for w in booter.workers) == ["", "shutdown", "shutdown"]
    assert booter.started == 3  # none went below min_containers: no boot to replace it


def test_drain_refuses_new_calls_and_lets_running_ones_finish(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool(min_containers=1, max_containers=1)
    booter.calls_may_end.clear()
    running, queued = submit(pool, b"running"), submit(pool, b"queued")
    wait_until(lambda: booter.workers and booter.workers[0].call is running, "the call")
    pool.drain()
    with pytest.raises(Exception, match="is draining"):
        submit(pool)
    assert not pool.finished
    booter.calls_may_end.set()
    assert (answer(running), answer(queued)) == (b"running", b"queued")
    wait_until(lambda: pool.finished, "the drained pool to finish")
    assert [w.ended_by for w in booter.workers] == ["shutdown"]  # cleanly, not killed
    assert booter.started == 1  # no warm container comes back while draining


def test_stop_fails_queued_calls_and_counts_them(
    make_pool: Callable[..., Pool], booter: FakeBooter
) -> None:
    pool = make_pool()
    booter.boots_may_end.clear()
    calls = [submit(pool) for _ in range(2)]
    pool.stop("the server is shutting down")
    for call in calls:
        assert call.done.wait(WAIT_S) and call.outcome is not None
        assert call.outcome.error is not None and call.outcome.error.kind == "unavailable"
    assert pool.stats()["calls_failed"] == 2
    booter.boots_may_end.set()
    wait_until(lambda: pool.finished, "the stopped pool to finish")


def test_a_database_error_after_a_boot_gives_the_slot_back(
    make_pool: Callable[..., Pool], booter: FakeBooter, db: FakeDB,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = make_pool(max_containers=1)
    db.add_boot_failures = 1
    call = submit(pool)
    assert answer(call) == b"x"  # by a second container: the first one's slot came back
    assert [w.ended_by for w in booter.workers] == ["kill", ""]
    assert "the scheduler failed" in caplog.text and "No space left" in caplog.text
