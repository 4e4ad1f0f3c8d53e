"""When a snapshot key's dump is tried again after a transient failure.

A dump that failed for a passing cause (CRIU killed, a timeout, a full store)
leaves no record in the store: the key's next dump only waits a backoff that
doubles with each consecutive transient failure, from ``first_s`` up to
``max_s``. A dump that works clears the count. It is kept in memory only: a
restarted server tries each key again at its first cold boot.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class _Backoff:
    """``failures`` transient dump failures in a row; no dump before ``retry_at``."""

    failures: int
    retry_at: float
    reason: str


class DumpRetries:
    """The backoff of each key whose last dump failed transiently.

    >>> now = [0.0]
    >>> retries = DumpRetries(lambda: now[0], first_s=60, max_s=3600)
    >>> retries.failed("k", "dump: criu dump timed out")
    60
    >>> retries.due("k"), retries.error("k")
    (False, 'dump: criu dump timed out (transient: next try in 1 min)')
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, first_s: float = 60.0,
                 max_s: float = 3600.0) -> None:
        self._clock = clock
        self._first_s = first_s
        self._max_s = max(max_s, first_s)
        self._backoff: dict[str, _Backoff] = {}
        self._lock = threading.Lock()

    def backoff(self, key: str) -> float:
        """Seconds the next transient failure of ``key`` holds its dumps off."""
        with self._lock:
            previous = self._backoff.get(key)
        failures = (previous.failures if previous else 0) + 1
        return min(self._first_s * 2 ** (failures - 1), self._max_s)

    def failed(self, key: str, reason: str) -> float:
        """A dump of ``key`` failed transiently; returns how long its dumps are held off."""
        with self._lock:
            previous = self._backoff.get(key)
            failures = (previous.failures if previous else 0) + 1
            delay = min(self._first_s * 2 ** (failures - 1), self._max_s)
            self._backoff[key] = _Backoff(failures, self._clock() + delay, reason)
        return delay

    def due(self, key: str) -> bool:
        """Whether ``key`` may be dumped now (no backoff, or it has passed)."""
        with self._lock:
            backoff = self._backoff.get(key)
        return backoff is None or self._clock() >= backoff.retry_at

    def clear(self, key: str) -> bool:
        """Forget ``key``'s failures (a dump worked, or the key was reset); True if any."""
        with self._lock:
            return self._backoff.pop(key, None) is not None

    def error(self, key: str) -> str | None:
        """``key``'s last transient dump error and when the next try is, or None."""
        with self._lock:
            backoff = self._backoff.get(key)
        if backoff is None:
            return None
        left = backoff.retry_at - self._clock()
        when = f"next try in {duration(left)}" if left > 0 else "next try at the next cold boot"
        return f"{backoff.reason} (transient: {when})"

    def errors(self) -> dict[str, str]:
        """``error`` of every key that has one."""
        with self._lock:
            keys = list(self._backoff)
        return {key: error for key in keys if (error := self.error(key)) is not None}


def duration(seconds: float) -> str:
    """``seconds`` for a person: whole minutes (rounded up) from a minute on, else seconds."""
    if seconds >= 60:
        return f"{math.ceil(seconds / 60 - 1e-9)} min"
    return f"{max(math.ceil(seconds), 1)} s"
