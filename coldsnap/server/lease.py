"""A held input slot of a live container, for inputs that travel outside the control
pipe (the HTTP gateway's requests): ``Pool.lease`` queues a ``LeaseRequest`` like a call,
a container with a free slot grants it a ``Lease``, and ``Lease.release`` frees it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from coldsnap.server.errors import ApiError

if TYPE_CHECKING:
    from coldsnap.server.worker import Worker


class Lease:
    """One input slot of ``worker``, held until ``release()``.

    While held the slot counts as busy: the container takes one input fewer and does
    not scale down. Nothing is sent to the container over its control pipe.
    """

    def __init__(self, worker: Worker, on_release: Callable[[Lease], None],
                 is_lost: Callable[[Lease], bool],
                 on_timeout: Callable[[Lease, float], None] = lambda lease, s: None) -> None:
        self.worker = worker
        self._on_release = on_release
        self._is_lost = is_lost
        self._on_timeout = on_timeout
        self._lock = threading.Lock()
        self._released = False

    def release(self) -> None:
        """Free the slot (and count the input); idempotent, safe from any thread."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self._on_release(self)

    def timed_out(self, timeout_s: float) -> None:
        """What the slot was for ran past ``timeout_s``: the pool stops the container
        (release the lease all the same)."""
        self._on_timeout(self, timeout_s)

    @property
    def released(self) -> bool:
        return self._released

    @property
    def lost(self) -> bool:
        """True once the container died or was stopped: whatever the slot was for can't
        be served by it any more (release it all the same)."""
        return self._is_lost(self)

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<Lease of {self.worker.id} ({state})>"


class LeaseRequest:
    """A lease waiting in a pool's queue; granted a Lease or failed, once."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.lease: Lease | None = None
        self.error: ApiError | None = None

    def grant(self, lease: Lease) -> None:
        self.lease = lease
        self.done.set()

    def fail(self, error: ApiError) -> bool:
        if self.done.is_set():
            return False
        self.error = error
        self.done.set()
        return True

    def add_log(self, line: str) -> None:
        """Boot logs a failed boot hands to what waited for it: a lease has no caller's
        log to show them in (they are in the app's log)."""
