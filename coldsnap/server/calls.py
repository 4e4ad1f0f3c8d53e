"""One input to a function, from acceptance to its answer, and the table of spawned calls."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import OrderedDict

from coldsnap.server.errors import ApiError
from coldsnap.wire.errors import NOT_FOUND

_MAX_CALL_LOG_BYTES = 4 * 1024 * 1024
# Backoff before a failed call's next attempt: the first, doubled each time, capped
# (Modal's default retry policy).
RETRY_FIRST_DELAY_S = 1.0
RETRY_MAX_DELAY_S = 60.0


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

    @property
    def label(self) -> str:
        target = self.tag + (f".{self.method}" if self.method else "")
        return f"{self.app}/{target}"

    @property
    def retry_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None when no attempt is left."""
        if self.attempts > self.retries:
            return None
        return min(RETRY_MAX_DELAY_S, RETRY_FIRST_DELAY_S * 2 ** (self.attempts - 1))

    def finish(self, outcome: Outcome) -> bool:
        """Set the outcome once; later finishes (a late result after a timeout) are dropped."""
        if self.done.is_set():
            return False
        self.outcome = outcome
        self.finished_at = time.monotonic()
        self.done.set()
        return True

    def fail(self, error: ApiError) -> bool:
        return self.finish(Outcome(ok=False, error=error))

    def add_log(self, line: str) -> None:
        # Bounded: the lines travel back in the reply's JSON header.
        if not self.done.is_set() and self._log_bytes < _MAX_CALL_LOG_BYTES:
            self.logs.append(line)
            self._log_bytes += len(line)


class CallTable:
    """Spawned calls by id, so ``get`` finds them: at most ``keep`` (the newest), and a
    finished one for ``keep_s`` after it finished."""

    def __init__(self, keep: int = 10_000, keep_s: float = 3600.0) -> None:
        self._calls: OrderedDict[str, Call] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep
        self._keep_s = keep_s

    def add(self, call: Call) -> None:
        with self._lock:
            self._calls[call.id] = call
            self._evict()

    def get(self, call_id: str) -> Call:
        with self._lock:
            call = self._calls.get(call_id)
        if call is None:
            raise ApiError(NOT_FOUND, f"no call with id {call_id!r}: it never existed, "
                           f"finished more than {self._keep_s:g} s ago, was pushed out by "
                           f"newer ones (the server keeps the last {self._keep}), or the "
                           "server restarted since (spawned calls live in its memory)")
        return call

    def _evict(self) -> None:
        now = time.monotonic()
        while self._calls:
            oldest = next(iter(self._calls.values()))
            expired = (oldest.finished_at is not None
                       and now - oldest.finished_at > self._keep_s)
            if len(self._calls) <= self._keep and not expired:
                break
            self._calls.popitem(last=False)
