"""Spawned calls by id, so that ``get`` finds them, across server restarts.

Every spawned call has a row in the state db from its spawn (``queued``) until
its result expires. The row gets the outcome (result or error, the call's log
lines) before anyone waiting for it hears: a result a caller has seen is on
disk. Calls not ended yet are also kept here in memory, for a ``get`` to wait on.

A result up to ``INLINE_RESULT_BYTES`` goes in its row; a larger one goes in a
file of its own under the state dir (``call-results/<id>``). Results can be as
large as ``COLDSNAP_MAX_PAYLOAD_BYTES`` (512 MiB); in SQLite one would be written
under the db's one lock, stalling every boot and deploy behind it meanwhile, and
the space of an expired one would stay in the db file (SQLite reuses freed pages
but never gives them back without a VACUUM). A file is written outside the lock
and its space is freed when it is removed. SQLite's own measurements put the
break-even between blobs in the db and in files around 100 KiB.

When the server starts, calls still ``queued`` were cut off when it stopped (a
crash: nothing could record them): they become ``interrupted``, and a ``get``
says so. A clean stop records the calls it ends as ``interrupted`` itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from coldsnap.server.calls import Call, Outcome
from coldsnap.server.errors import ApiError
from coldsnap.server.state import (
    DONE,
    EXPIRED,
    INTERRUPTED,
    QUEUED,
    CallRecord,
    StateDB,
)
from coldsnap.wire import errors as kinds

INLINE_RESULT_BYTES = 100 * 1024
# How often finishing calls sweep expired results out (the server's start sweeps too).
SWEEP_EVERY_S = 60.0

logger = logging.getLogger(__name__)


class SpawnedCalls:
    """The spawned calls of this server and the ones before it on the same state dir:
    ``add`` at spawn, ``get`` by id; a result stays fetchable ``ttl_s`` after its call
    ended, then ``get`` says it expired (for another ``ttl_s``, then: no such call)."""

    def __init__(self, db: StateDB, results_dir: Path, ttl_s: float) -> None:
        self._db = db
        self._results = results_dir
        self._ttl_s = ttl_s
        self._live: dict[str, Call] = {}  # not ended yet: a get waits on these
        self._lock = threading.Lock()
        self._stopping = False
        self._next_sweep = 0.0

    def recover(self) -> int:
        """At the server's start: calls the last server left unended were interrupted;
        expired results and orphan result files go. Returns how many were interrupted."""
        started = time.time()
        reason = (f"the server stopped while it was queued or running (noticed when the "
                  f"server started again at {_utc(started)})")
        interrupted = self._db.interrupt_calls(reason, started)
        if interrupted:
            logger.warning("%d spawned call(s) were cut off when the server last stopped; "
                           "a get of them says they were interrupted", interrupted)
        self._results.mkdir(parents=True, exist_ok=True)
        known = self._db.call_result_files()
        for path in self._results.iterdir():
            if path.name not in known:  # written, then the server died before its row
                path.unlink(missing_ok=True)
        self._sweep(started)
        return interrupted

    def stopping(self) -> None:
        """The server is stopping: calls it fails from now on were interrupted by that."""
        self._stopping = True

    def add(self, call: Call) -> None:
        """Keep a call just spawned; its end is recorded when it comes."""
        self._db.add_call(CallRecord(call.id, call.app, call.tag, call.method, QUEUED,
                                     created_at=time.time()))
        with self._lock:
            self._live[call.id] = call
        if not call.on_finish(self._record_end):
            self._record_end(call)  # it ended before it was added

    def get(self, call_id: str) -> Call:
        """The call, ended or not; ApiError when it can't be answered (unknown id,
        interrupted, expired)."""
        with self._lock:
            call = self._live.get(call_id)
        if call is not None:
            return call
        record = self._db.call(call_id)
        if record is None:
            raise ApiError(kinds.NOT_FOUND, f"no call with id {call_id!r}: no spawned call of this "
                           "server had it, or it ended more than "
                           f"{_duration(2 * self._ttl_s)} ago")
        return self._ended(record)

    def forget(self, call_id: str) -> None:
        """Drop an ended call's record and result now (its caller has it)."""
        with self._lock:
            if call_id in self._live:
                return
        for name in self._db.forget_call(call_id):
            (self._results / name).unlink(missing_ok=True)

    def _ended(self, record: CallRecord) -> Call:
        label = record.app + "/" + record.tag + (f".{record.method}" if record.method else "")
        if record.state in (INTERRUPTED, QUEUED):  # QUEUED: a server still ending it
            raise ApiError(kinds.INTERRUPTED, f"call {record.id} to {label} was interrupted: "
                           f"{record.error_message or 'the server stopped'}; it has no "
                           f"result: call {label} again")
        ended = record.finished_at or 0.0
        blob = record.blob
        if record.state == DONE and record.blob_file is not None:
            try:
                blob = (self._results / record.blob_file).read_bytes()
            except FileNotFoundError:
                if time.time() - ended <= self._ttl_s:
                    raise ApiError(kinds.INTERNAL, f"the result of call {record.id} was kept in "
                                   f"{self._results / record.blob_file}, which is gone; "
                                   f"call {label} again") from None
                blob = None  # swept away just now: expired
        if record.state == EXPIRED or time.time() - ended > self._ttl_s:
            raise ApiError(kinds.EXPIRED, f"the result of call {record.id} to {label} "
                           f"expired: it ended at {_utc(ended)} and results are kept "
                           f"{_duration(self._ttl_s)} (COLDSNAP_CALL_RESULT_TTL_S); call "
                           f"{label} again")
        call = Call(record.app, record.tag, record.method, b"", 0.0, 0, id=record.id,
                    attempts=record.attempts, logs=list(record.logs))
        error = None if record.error_kind is None else ApiError(
            record.error_kind, record.error_message or "", blob)
        call.finish(Outcome(ok=error is None, blob=blob if error is None else None,
                            error=error))
        return call

    def _record_end(self, call: Call) -> None:
        outcome = call.outcome
        assert outcome is not None
        now = time.time()
        state, blob, kind, message = DONE, outcome.blob, None, None
        if outcome.error is not None:
            blob, kind, message = outcome.error.blob, outcome.error.kind, outcome.error.message
            if self._stopping and kind in (kinds.UNAVAILABLE, kinds.CONTAINER_DIED):
                state, message = INTERRUPTED, _stopped_words(now, kind, message)
        blob_file = None
        if blob is not None and len(blob) > INLINE_RESULT_BYTES:
            self._write_result(call.id, blob)
            blob_file, blob = call.id, None
        self._db.end_call(CallRecord(
            call.id, call.app, call.tag, call.method, state, created_at=0.0,
            error_kind=kind, error_message=message, blob=blob, blob_file=blob_file,
            logs=tuple(call.logs), attempts=call.attempts, finished_at=now))
        with self._lock:
            self._live.pop(call.id, None)
            sweep = now >= self._next_sweep
            if sweep:
                self._next_sweep = now + SWEEP_EVERY_S
        if sweep:
            self._sweep(now)

    def _write_result(self, call_id: str, blob: bytes) -> None:
        """The result in its own file, whole or not at all (written aside, then renamed)."""
        self._results.mkdir(parents=True, exist_ok=True)
        partial = self._results / f".{call_id}.partial"
        partial.write_bytes(blob)
        os.replace(partial, self._results / call_id)

    def _sweep(self, now: float) -> None:
        """Drop results older than the ttl, and rows twice as old."""
        for name in self._db.expire_calls(now - self._ttl_s, now - 2 * self._ttl_s):
            (self._results / name).unlink(missing_ok=True)


def _stopped_words(now: float, kind: str, message: str) -> str:
    """Why a call the stopping server ended has no result. An ``unavailable`` error is
    the stop's own (queued, or cut short past the grace period): its words would only
    repeat that; a container's death during the grace period is told in brackets."""
    stopped = f"the server was stopped at {_utc(now)}"
    return stopped if kind == kinds.UNAVAILABLE else f"{stopped} ({message})"


def _utc(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix_s))


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 3600 == 0:
        return f"{seconds / 86400:g} days"
    if seconds >= 3600 and seconds % 60 == 0:
        return f"{seconds / 3600:g} hours"
    return f"{seconds:g} s"
