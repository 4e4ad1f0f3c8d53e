"""TEMPORARY (replaced by the @concurrent work's Lease): an HTTP input holding a
container of a one-input-at-a-time pool, so the gateway can be built and tested."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import TYPE_CHECKING

from coldsnap.server.calls import Call
from coldsnap.server.errors import ApiError
from coldsnap.wire.errors import TIMEOUT, UNAVAILABLE

if TYPE_CHECKING:
    from coldsnap.server.pool import Pool
    from coldsnap.server.worker import Worker


class Lease:
    def __init__(self) -> None:
        self.worker: Worker | None = None  # type: ignore[assignment]
        self.assigned = threading.Event()
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    @property
    def lost(self) -> bool:
        return self.worker is not None and not self.worker.alive


@dataclasses.dataclass(eq=False)
class LeaseCall(Call):
    lease: Lease = dataclasses.field(default_factory=Lease)


def lease(pool: Pool, timeout_s: float | None) -> Lease:
    call = LeaseCall(pool.fn.app, pool.fn.tag, None, b"", timeout_s=1e9, retries=0)
    pool.submit(call)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not call.lease.assigned.wait(0.01):
        if call.done.is_set():
            assert call.outcome is not None and call.outcome.error is not None
            raise call.outcome.error
        if deadline is not None and time.monotonic() > deadline:
            pool.cancel(call)
            call.lease.release()
            raise ApiError(TIMEOUT, f"no container of {pool.fn.label} was free within "
                           f"{timeout_s:g} s")
    if call.lease.worker is None:
        raise ApiError(UNAVAILABLE, "no container")
    return call.lease


def hold(call: LeaseCall, worker: Worker) -> None:
    """In the pool's container thread: hand the worker over until released or dead."""
    call.lease.worker = worker
    call.lease.assigned.set()
    while not call.lease.released.wait(0.05):
        if not worker.alive:
            break
