"""One input to a function, from acceptance to its answer (spawned calls are kept by
``spawned.SpawnedCalls``)."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Protocol

from coldsnap.server.errors import ApiError
from coldsnap.wire.retries import Retries

_MAX_CALL_LOG_BYTES = 4 * 1024 * 1024

logger = logging.getLogger(__name__)


class CallRunner(Protocol):
    """Where a call waits or runs (the function's ``Pool``): what cancelling it needs."""

    def cancel_call(self, call: Call, reason: str) -> None: ...


@dataclasses.dataclass
class Outcome:
    """What a call ends with: a result blob, or an error (maybe with an exception blob)."""

    ok: bool
    blob: bytes | None = None
    error: ApiError | None = None


@dataclasses.dataclass(eq=False)
class Call:
    """One input to a function: its arguments, its attempts, the log lines it produced
    and, once done, its outcome. The pool that runs it and whoever waits share it."""

    app: str
    tag: str
    method: str | None
    args: bytes
    timeout_s: float  # how long one attempt may run in its container
    retries: int
    id: str = dataclasses.field(default_factory=lambda: "fc-" + uuid.uuid4().hex[:16])
    attempts: int = 0
    created_at: float = dataclasses.field(default_factory=time.monotonic)
    finished_at: float | None = None  # time.monotonic() when the outcome was set
    logs: list[str] = dataclasses.field(default_factory=list)
    outcome: Outcome | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    _log_bytes: int = 0
    _on_finish: Callable[[Call], None] | None = None
    _finish_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # The delays between attempts (retries= of the function); None: Modal's default.
    retry_policy: Retries | None = None
    # A remote_gen call: the generator's items, as they come, until someone takes them.
    stream: bool = False
    _items: deque[bytes] = dataclasses.field(default_factory=deque)
    _items_changed: threading.Condition = dataclasses.field(default_factory=threading.Condition)
    pool: CallRunner | None = None  # set once queued
    # Told of the outcome once, with ``on_finish``'s hook (the server's metrics).
    on_end: Callable[[Call], None] | None = None
    task_id: str = ""  # the container that ran its last attempt (the call graph's)

    @property
    def label(self) -> str:
        target = self.tag + (f".{self.method}" if self.method else "")
        return f"{self.app}/{target}"

    @property
    def retry_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None when no attempt is left."""
        if self.attempts > self.retries:
            return None
        policy = self.retry_policy or Retries(max_retries=self.retries)
        return policy.delay(self.attempts)

    def finish(self, outcome: Outcome) -> bool:
        """Set the outcome once; later finishes (a late result after a timeout) are dropped.
        The ``on_finish`` hook runs before anyone waiting hears of it."""
        with self._finish_lock:
            if self.outcome is not None:
                return False
            self.outcome = outcome
            self.finished_at = time.monotonic()
            hook = self._on_finish
        for each in (self.on_end, hook):
            if each is None:
                continue
            try:
                each(self)
            except Exception:  # the caller waiting must hear back all the same
                logger.exception("recording the end of call %s failed", self.id)
        self.done.set()
        with self._items_changed:  # a reader of items waits for these or the end
            self._items_changed.notify_all()
        return True

    def add_item(self, blob: bytes | None) -> None:
        """One value the call's generator yielded; dropped unless it streams."""
        if not self.stream or self.done.is_set():
            return
        with self._items_changed:
            self._items.append(blob if blob is not None else b"")
            self._items_changed.notify_all()

    def next_item(self, timeout: float | None) -> bytes | None:
        """The next item, waiting up to ``timeout``; None when the call ended (or the
        wait ran out) with no item left."""
        with self._items_changed:
            self._items_changed.wait_for(lambda: self._items or self.done.is_set(), timeout)
            return self._items.popleft() if self._items else None

    def on_finish(self, hook: Callable[[Call], None]) -> bool:
        """Run ``hook`` when the call finishes, before its waiters wake (a spawned call's
        result is on disk before anyone sees it); False, and no hook, if it already has."""
        with self._finish_lock:
            if self.outcome is not None:
                return False
            self._on_finish = hook
            return True

    def fail(self, error: ApiError) -> bool:
        return self.finish(Outcome(ok=False, error=error))

    def add_log(self, line: str) -> None:
        # Bounded: the lines travel back in the reply's JSON header.
        if not self.done.is_set() and self._log_bytes < _MAX_CALL_LOG_BYTES:
            self.logs.append(line)
            self._log_bytes += len(line)
