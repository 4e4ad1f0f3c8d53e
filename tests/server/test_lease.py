"""``Pool.lease`` on real containers (the none engine: real runtime processes, no
sandbox): a lease boots a container and holds one of its input slots, a call runs
beside it in the other, release frees it, and a lease of a container that died is lost."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from coldsnap.engine.none_engine import NoneEngine
from coldsnap.server.boot import Booter
from coldsnap.server.calls import Call
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.logs import LogBook
from coldsnap.server.pool import Lease, Pool, PoolContext
from coldsnap.server.state import StateDB
from coldsnap.settings import Settings
from coldsnap.wire.description import AppDescription
from coldsnap.wire.serialization import dumps_args
from tests.conftest import APPS
from tests.end_to_end import wait_for

BOOT_WAIT_S = 120.0  # a loaded machine boots a runtime slowly


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    description = AppDescription.from_dict({
        "app": "test-concurrent", "image": {"hash": "", "spec": {"layers": [{"op": "from_host"}]}},
        "functions": {"nap": {"kind": "function", "options": {"max_inputs": 2}}},
        "module": "concurrent_inputs"})
    spec = FunctionSpec.from_description("test-concurrent", "c" * 64, "nap", description,
                                         (APPS / "concurrent_inputs.py").read_bytes(), None)
    db = StateDB(tmp_path / "state.db")
    (tmp_path / "run").mkdir()
    booter = Booter(Settings(state_dir=tmp_path, boot_timeout_s=BOOT_WAIT_S),
                    NoneEngine(tmp_path / "run"), db, note=lambda *_: None)
    the_pool = Pool(spec, PoolContext(booter, db, LogBook(echo=False),
                                      lambda header, blob: ({"ok": False}, None)))
    try:
        yield the_pool
    finally:
        the_pool.stop("the test is over")
        the_pool.kill()
        wait_for(lambda: the_pool.finished, 30, "the pool to finish")
        db.close()


def _nap_in(pool: Pool) -> str:
    call = Call("test-concurrent", "nap", None, dumps_args((0.1,), {}), timeout_s=60,
                retries=0)
    pool.submit(call)
    assert call.done.wait(BOOT_WAIT_S) and call.outcome is not None
    assert call.outcome.ok, call.outcome.error
    return str(cloudpickle.loads(call.outcome.blob)["container"])


def _inputs(pool: Pool) -> list[int]:
    return [c["inputs"] for c in pool.stats()["containers"]]


def test_a_lease_holds_a_slot_of_a_real_container(pool: Pool) -> None:
    lease = pool.lease(timeout_s=BOOT_WAIT_S)  # scaled to zero: this boots one
    assert isinstance(lease, Lease) and lease.worker.alive and not lease.lost
    assert _inputs(pool) == [1]
    assert _nap_in(pool) == lease.worker.id  # the other slot, beside the lease
    assert pool.stats()["boots_ok"] == 1
    lease.release()
    lease.release()
    stats = pool.stats()
    assert (_inputs(pool), stats["http_requests"], stats["calls_ok"]) == ([0], 1, 1)
    again = pool.lease(timeout_s=5)  # the warm container, no boot
    assert again.worker is lease.worker
    os.kill(again.worker.container.pid, signal.SIGKILL)
    wait_for(lambda: again.lost, 30, "the lease to be lost")
    again.release()  # nothing to free: its container left
    wait_for(lambda: not pool.stats()["containers"], 30, "the dead container to leave")
    started = time.monotonic()
    third = pool.lease(timeout_s=BOOT_WAIT_S)  # a new container for it
    assert third.worker is not lease.worker and not third.lost
    assert time.monotonic() - started < BOOT_WAIT_S
    third.release()
    assert pool.stats()["http_requests"] == 3
