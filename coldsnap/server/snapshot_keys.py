"""Which snapshot keys are being made right now, which failed for good, which wait
to be tried again; and what a boot of a key does (``SnapshotKeys.claim``): the
bookkeeping under the boot policy of boot.py."""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from collections.abc import Callable

from coldsnap.engine import Engine
from coldsnap.server.dump_retry import DumpRetries

# After a transient restore failure, boots of the key fall back this long before
# the next restore is tried.
TRANSIENT_RETRY_S = 300.0


@dataclasses.dataclass(frozen=True)
class _Pause:
    """A transient restore failure: no restore of the key before ``retry_at`` (clock time)."""

    retry_at: float
    reason: str


class Claim(enum.Enum):
    """What a boot of a snapshot key does (``SnapshotKeys.claim``)."""

    RESTORE = "restore"
    FALLBACK = "fallback"  # boot without a snapshot
    WAITED_OUT = "waited-out"  # another boot is still making it: boot without it
    CREATE = "create"  # make the snapshot; the caller must ``release`` the key after


class SnapshotKeys:
    """Which keys are being created right now, which failed, which wait to be retried.

    One record says that a key failed for good, and why: the engine's store
    (``failed/<key>.json``, next to the snapshot on the same host, so it outlives
    the server). ``mark_failed`` writes it through the engine, ``failure`` and
    ``claim`` read it (once per claim) and deleting the key from the store
    (``coldsnap snapshots rm KEY``) clears it. Nothing else remembers it: not
    memory, not SQLite.

    A transient restore failure is kept only here, in memory: boots fall back
    until its retry-after time passes, and a restart forgets it (the snapshot was
    probably fine). So are transient dump failures (``dumps``): the key's next dump
    waits for a backoff.
    """

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic,
                 dump_retry_s: float = 60.0, dump_retry_max_s: float = 3600.0,
                 on_failed: Callable[[str, str], None] = lambda key, reason: None) -> None:
        self._engine = engine
        self._on_failed = on_failed  # (key, reason): the snapshot history's record
        self._clock = clock
        self.dumps = DumpRetries(clock, dump_retry_s, dump_retry_max_s)
        self._creating: set[str] = set()
        self._paused: dict[str, _Pause] = {}  # transient failures
        self._cond = threading.Condition()

    def failure(self, key: str) -> str | None:
        """Why ``key`` failed for good, or None: the store's record."""
        return self._engine.failure(key)

    def mark_failed(self, key: str, reason: str) -> None:
        """Write ``key``'s failure record: boots fall back until `snapshots rm KEY`."""
        with self._cond:
            self._paused.pop(key, None)
        self.dumps.clear(key)
        self._engine.mark_failed(key, reason)
        self._on_failed(key, reason)

    def mark_transient(self, key: str, reason: str, retry_in_s: float = TRANSIENT_RETRY_S
                       ) -> None:
        """Fall back, without restoring, until ``retry_in_s`` from now; keep the snapshot."""
        with self._cond:
            self._paused[key] = _Pause(
                self._clock() + retry_in_s,
                f"{reason} (transient: restores of this key resume in {retry_in_s / 60:g} min)")

    def transient_error(self, key: str) -> str | None:
        """The last transient failure of ``key`` until a restore (or dump) works or it is
        forgotten."""
        with self._cond:
            pause = self._paused.get(key)
        return pause.reason if pause else self.dumps.error(key)

    def restored(self, key: str) -> None:
        """A restore worked: a transient failure before it is over."""
        with self._cond:
            self._paused.pop(key, None)

    def forget(self, key: str) -> bool:
        """Drop the transient failures of ``key``; True if it had one. (The permanent
        record goes with the key's deletion from the store.)"""
        with self._cond:
            paused = self._paused.pop(key, None) is not None
        return self.dumps.clear(key) or paused

    def claim(self, key: str, wait_s: float) -> Claim:
        """Whether this boot restores, falls back or creates the snapshot of ``key``."""
        deadline = self._clock() + wait_s
        with self._cond:
            while key in self._creating:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return Claim.WAITED_OUT  # don't wait forever
                self._cond.wait(remaining)
            if self.failure(key) is not None:
                return Claim.FALLBACK
            if self._engine.lookup(key) is not None:
                pause = self._paused.get(key)
                if pause is not None and self._clock() < pause.retry_at:
                    return Claim.FALLBACK
                return Claim.RESTORE
            if not self.dumps.due(key):
                return Claim.FALLBACK  # its last dump failed transiently: not yet
            self._creating.add(key)
            return Claim.CREATE

    def release(self, key: str) -> None:
        with self._cond:
            self._creating.discard(key)
            self._cond.notify_all()
