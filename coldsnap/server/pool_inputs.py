"""How one input of a pool runs and ends: answered, retried (``retries=``), or failed
because its container timed out or died; a lease's release. ``Pool`` inherits these;
they share its lock, its containers and its counters."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from coldsnap.server.boot import Boot
from coldsnap.server.calls import Call, Outcome
from coldsnap.server.errors import ApiError
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.lease import Lease, LeaseRequest
from coldsnap.server.worker import CallEnd, CallResult, Worker
from coldsnap.wire.errors import CANCELLED, CONTAINER_DIED, REMOTE, TIMEOUT, UNAVAILABLE

QueueItem = Call | LeaseRequest

logger = logging.getLogger("coldsnap.server.pool")
NOTED_EXCEPTION_CHARS = 200  # of a retried call's exception, in its log line


class PoolInputs:
    """Running inputs in containers and ending them; see ``Pool`` for the state."""

    fn: FunctionSpec
    counters: dict[str, int]
    _cond: threading.Condition
    _queue: deque[QueueItem]
    _inputs: dict[Worker, int]
    _retiring: dict[Worker, str]
    _cut_by_stop: set[Worker]
    _retrying: int
    _stopped: bool
    _draining: bool
    _stop_reason: str
    _live: set[Worker]
    _ctx: Any  # PoolContext
    max_inputs: int
    target_inputs: int

    def _scale(self) -> None:
        raise NotImplementedError

    def cancel_call(self, call: Call, reason: str) -> None:
        """``FunctionCall.cancel()``: the call ends as cancelled; a queued one leaves the
        queue, a running one's container is stopped (a call can't be interrupted)."""
        with self._cond:
            if call in self._queue:
                self._queue.remove(call)
            running = [w for w in self._live if call.id in w.running]
        if not call.fail(ApiError(CANCELLED, reason)):
            return  # it ended first
        for worker in running:  # its other inputs hear why, and are retried if they may
            worker.note(f"stopping: call {call.id} was cancelled")
            self._retire(worker, f"call {call.id} to {call.label} was cancelled")
            worker.kill()

    def _run_input(self, boot: Boot, call: Call) -> None:
        """Run ``call`` in ``boot``'s container and end it; a container that timed out or
        died is retired (it takes no more inputs; its other inputs end too)."""
        worker = boot.worker
        t0 = time.monotonic()
        try:
            result = worker.run_call(call)
        except Exception as exc:  # a server bug must not leave the caller waiting
            logger.exception("the server failed running call %s in container %s",
                             call.id, worker.id)
            worker.note(f"stopping: the server failed running call {call.id}: {exc!r}")
            self._input_ended(worker)
            self._retire(worker, f"the server failed running call {call.id}")
            self._fail(call, ApiError(
                CONTAINER_DIED, f"the server failed running {call.label} in container "
                f"{worker.id} ({type(exc).__name__}: {exc}); the container was stopped. "
                "See the server log"))
            return
        self._input_ended(worker)  # a free slot before its caller hears back: see Pool
        if result.end is CallEnd.RESULT:
            delay = None if result.ok else self._requeue(call)
            if delay is not None:  # retries=, as in Modal
                worker.note(f"{call.label} raised{_exception_words(result.summary)} "
                            f"(attempt {call.attempts} of {call.retries + 1}); trying again "
                            f"in {delay:g} s")
            else:
                self._answer(call, result)  # the caller waits on no bookkeeping
            self._record_first_input(boot, time.monotonic() - t0)
        elif result.end is CallEnd.TIMED_OUT:
            self._timed_out(worker, call)
        else:
            self._died(worker, call, result)

    def _record_first_input(self, boot: Boot, seconds: float) -> None:
        with self._cond:
            if "first_input_s" in boot.timings:
                return
            boot.timings["first_input_s"] = seconds
        worker = boot.worker
        self._ctx.db.update_boot_timings(worker.boot_id, boot.timings)
        worker.note(f"first input ran for {seconds * 1000:.0f} ms (the call itself, after the "
                    "boot)", to_caller=False)

    def _takes_more(self, worker: Worker, running: int) -> bool:
        """A free slot, and not above target_inputs while another container is below."""
        if running >= self.max_inputs:
            return False
        if running < self.target_inputs:
            return True
        return not any(self._inputs.get(w, 0) < self.target_inputs
                       for w in self._live if w is not worker and w not in self._retiring
                       and not w.exited.is_set())

    def _timed_out(self, worker: Worker, call: Call) -> None:
        message = (f"call {call.id} to {call.label} ran longer than its timeout of "
                   f"{call.timeout_s:g} s; its container {worker.id} was stopped. "
                   "Raise timeout= in the decorator if the call needs longer")
        worker.note(f"call {call.id} timed out after {call.timeout_s:g} s; stopping")
        self._retire(worker, f"call {call.id} to {call.label} ran longer than its timeout "
                             f"of {call.timeout_s:g} s")
        worker.kill()  # its other inputs end now, with the reason above
        self._retry_or_fail(call, ApiError(TIMEOUT, message))

    def _died(self, worker: Worker, call: Call, result: CallResult) -> None:
        with self._cond:
            reason = self._retiring.get(worker)
            cut_by_stop = worker in self._cut_by_stop
        self._retire(worker, "")  # no reason of ours: each input says how it died
        if cut_by_stop:  # its death is the stop's doing: the caller hears the stop
            self._fail(call, ApiError(UNAVAILABLE, (
                f"{self._stop_reason}: call {call.id} to {call.label} still ran after the "
                "grace period given to running calls, and was cut short; it has no result: "
                f"call {call.label} again once the server runs")))
            return
        attempt = f"(attempt {call.attempts} of {call.retries + 1})"
        if reason:  # another input of the container stopped it
            message = (f"container {worker.id} was stopped while running {call.label} "
                       f"{attempt}: {reason}. See `coldsnap logs {call.app}`")
        else:  # one sentence: what happened, to which call, then what to read
            died = result.message or f"container {worker.id} died"
            detail = f"; {result.detail}" if result.detail else ""
            message = (f"{died} while running {call.label} (call {call.id}, attempt "
                       f"{call.attempts} of {call.retries + 1}){detail}. See `coldsnap logs "
                       f"{call.app}`")
        self._retry_or_fail(call, ApiError(CONTAINER_DIED, message))

    def _retire(self, worker: Worker, reason: str) -> None:
        """The container takes no more inputs (its thread makes it leave). ``reason``:
        why the server stopped it, for its other inputs' messages ("" when it died on
        its own); the first stays."""
        with self._cond:
            self._retiring.setdefault(worker, reason)
            self._scale()
            self._cond.notify_all()

    def _input_ended(self, worker: Worker) -> None:
        with self._cond:
            if worker in self._inputs:
                self._inputs[worker] -= 1
            self._scale()
            self._cond.notify_all()

    def _answer(self, call: Call, result: CallResult) -> None:
        if result.ok:
            outcome = Outcome(ok=True, blob=result.blob)
            key = "calls_ok"
        else:
            raised = f"raised {result.summary}" if result.summary else "raised an exception"
            error = ApiError(REMOTE, f"{call.label} {raised}", result.blob,
                             notes=[f"coldsnap: {text}" for text in result.limits],
                             traceback=result.traceback)
            outcome, key = Outcome(ok=False, error=error), "calls_error"
        with self._cond:  # counted before the caller hears back: its stats include it
            self.counters[key] += 1
        call.finish(outcome)

    def _retry_or_fail(self, call: Call, error: ApiError) -> None:
        if self._requeue(call) is not None:
            return
        with self._cond:
            if call.done.is_set():
                return
            self.counters["calls_failed"] += 1
        call.fail(error)

    def _requeue(self, call: Call) -> float | None:
        """Queue ``call`` again after its backoff (``Call.retry_delay``), first in line,
        if it has attempts left: the backoff, or None."""
        delay = call.retry_delay
        with self._cond:
            if call.done.is_set() or delay is None or self._stopped:
                return None
            self._retrying += 1
        timer = threading.Timer(delay, self._retry_now, args=(call,))
        timer.daemon = True
        timer.start()
        return delay

    def _retry_now(self, call: Call) -> None:
        with self._cond:
            self._retrying -= 1
            if call.done.is_set():  # cancelled while it waited
                return
            if self._stopped:
                self.counters["calls_failed"] += 1
                call.fail(ApiError(UNAVAILABLE, f"{call.label} was waiting to be retried "
                                   f"when it could run no more: {self._stop_reason}"))
                return
            self._queue.appendleft(call)
            self._scale()
            self._cond.notify_all()

    def _fail(self, call: Call, error: ApiError) -> None:
        with self._cond:
            self.counters["calls_failed"] += 1
        call.fail(error)

    def _fail_queued(self, item: QueueItem, error: ApiError, logs: Sequence[str] = ()) -> None:
        """Fail a queued call or lease request; the caller holds the lock."""
        if isinstance(item, Call):
            self.counters["calls_failed"] += 1
        for line in logs:
            item.add_log(line)
        item.fail(error)

    # leases

    def try_lease(self) -> Lease | None:
        """A lease at once when a live container has a free slot and nothing queued
        waits before it (the gateway's warm path: no thread to wait in), else None."""
        with self._cond:
            if self._queue or self._draining:
                return None
            for worker in self._live:
                if (worker not in self._retiring and not worker.exited.is_set()
                        and self._takes_more(worker, self._inputs.get(worker, 0))):
                    self._inputs[worker] += 1
                    worker.lease_started()
                    return Lease(worker, self._release_lease, self._lease_lost,
                                 self._lease_timed_out)
        return None

    def _release_lease(self, lease: Lease) -> None:
        lease.worker.lease_ended()
        with self._cond:
            self.counters["http_requests"] += 1
            if self._inputs.get(lease.worker, 0) > 0:
                self._inputs[lease.worker] -= 1
                lease.worker.idle_since = time.monotonic()
            if self._queue or self._draining:  # someone waits for this slot, or its end
                self._scale()
                self._cond.notify_all()
            # Else nobody needs waking: a container thread re-reads its slots within a
            # second (a wake per request cost the gateway's thread the GIL).

    def _lease_timed_out(self, lease: Lease, timeout_s: float) -> None:
        """A web request ran past the function's timeout: its container is stopped, as
        for a call (its handler may still run; its other inputs end with this reason)."""
        worker = lease.worker
        worker.note(f"a web request timed out after {timeout_s:g} s; stopping", to_caller=False)
        self._retire(worker, f"a web request to {self.fn.label} ran longer than its timeout "
                             f"of {timeout_s:g} s")
        worker.kill()

    def _lease_lost(self, lease: Lease) -> bool:
        worker = lease.worker
        with self._cond:
            gone = worker not in self._live or worker in self._retiring
        return gone or not worker.alive


def _exception_words(summary: str, width: int = NOTED_EXCEPTION_CHARS) -> str:
    """`` ValueError: bad row 7`` (what a retried call raised, one line, cut at
    ``width``), or "" when the runtime sent no summary."""
    line = summary.splitlines()[0] if summary else ""
    return f" {line[:width - 1]}…" if len(line) > width else f" {line}" if line else ""
