"""One function version's queue and containers: the scheduler.

Each container has a thread that boots it and then takes calls from the queue
one at a time, so an idle container is reused simply by being the one that
waits. ``_scale`` starts a boot when the queued calls outnumber the idle and
booting containers, up to max_containers, and keeps min_containers warm.
An idle container leaves after scaledown_window.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from typing import Any

from coldsnap.engine import Container
from coldsnap.server import lease_shim
from coldsnap.server.boot import Boot, Booter, BootKind
from coldsnap.server.calls import Call, Outcome
from coldsnap.server.errors import ApiError
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.logs import LogBook
from coldsnap.server.state import StateDB
from coldsnap.server.worker import BootFailed, CallEnd, CallResult, ContainerRequests, Worker
from coldsnap.wire.errors import (
    BOOT_FAILED,
    CANCELLED,
    CONTAINER_DIED,
    REMOTE,
    TIMEOUT,
    UNAVAILABLE,
)
from coldsnap.wire.timings import describe_timings

DEFAULT_MAX_CONTAINERS = 32
SHUTTING_DOWN = "the coldsnap server is shutting down"

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class PoolContext:
    booter: Booter
    db: StateDB
    logs: LogBook
    requests: ContainerRequests  # answers what a container asks while it runs a call


class Pool:
    """The queue of one function version and its containers: ``submit`` queues a call,
    ``drain`` finishes queued calls but takes no new ones, ``stop`` fails them too."""

    # Invariants, whenever _cond is free:
    # - _slots == _booting + len(_live) <= max_containers: only _scale takes slots, each
    #   held until the boot fails or the container leaves _live; a container that left
    #   is in _exiting until it exited (so max_containers + _exiting may run a moment).
    # - _busy <= _live: containers running a call; the rest are idle (a dead one too,
    #   until its thread notices). A container is idle before its caller hears back,
    #   so a caller's next call finds it instead of booting another.
    # - A container leaves _live in the critical section that decided it leaves
    #   (_leave), so idle containers scaling down at once can't go below min_containers.
    # - boots_ok + boots_failed + _booting == the boots _scale started; each call the
    #   pool ends is counted once in calls_ok, calls_error or calls_failed (stop() too),
    #   not one cancelled while queued. _retrying calls are in no queue nor container.

    def __init__(self, fn: FunctionSpec, ctx: PoolContext) -> None:
        self.fn = fn
        self._ctx = ctx
        self._cond = threading.Condition()
        self._queue: deque[Call] = deque()
        self._live: set[Worker] = set()
        self._starting: set[Worker] = set()  # containers of boots in progress
        self._stopped = False  # the server is shutting down: no new containers
        self._slots = 0  # booting + live
        self._exiting = 0  # containers told to leave that have not exited yet
        self._booting = 0
        self._busy: set[Worker] = set()  # live containers running a call
        self._draining = False
        self._retrying = 0  # calls waiting out a retry's backoff, in no queue meanwhile
        self._stop_reason = ""
        self._noted_cut_boots = False  # the log said once why boots were cut short
        self._min_backoff_until = 0.0
        self._min_backoff_s = 5.0
        self.counters = {"calls_ok": 0, "calls_error": 0, "calls_failed": 0,
                         "boots_ok": 0, "boots_failed": 0}
        opts = fn.options
        self.max_containers = opts.max_containers or DEFAULT_MAX_CONTAINERS
        self.min_containers = min(opts.min_containers, self.max_containers)
        with self._cond:
            self._scale()

    # the queue

    def submit(self, call: Call) -> None:
        with self._cond:
            if self._draining:
                raise ApiError(UNAVAILABLE, f"{self.fn.label} version {self.fn.version[:12]} "
                               "is draining; call again to reach the current version")
            self._queue.append(call)
            self._scale()
            self._cond.notify()

    def cancel(self, call: Call) -> None:
        """Drop a call whose caller stopped waiting, if no container took it yet."""
        with self._cond:
            if call in self._queue:
                self._queue.remove(call)

    def cancel_call(self, call: Call, reason: str) -> None:
        """``FunctionCall.cancel()``: the call ends as cancelled; a queued one leaves the
        queue, a running one's container is stopped (a call can't be interrupted)."""
        with self._cond:
            if call in self._queue:
                self._queue.remove(call)
            running = [w for w in self._busy if w.call is call]
        if not call.fail(ApiError(CANCELLED, reason)):
            return  # it ended first
        for worker in running:
            worker.note(f"stopping: call {call.id} was cancelled")
            worker.kill()

    def drain(self) -> None:
        """Take no new calls; finish queued ones; containers leave once idle."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    def stop(self, reason: str) -> None:
        """Fail queued calls and start no more containers; containers leave once idle
        and boots in progress end (``kill`` ends what is left)."""
        with self._cond:
            self._draining = True
            self._stopped = True
            self._stop_reason = reason
            while self._queue:
                self.counters["calls_failed"] += 1
                self._queue.popleft().fail(ApiError(UNAVAILABLE, reason))
            self._cond.notify_all()

    def kill(self) -> None:
        """Kill every container of this pool, booting or live (after ``stop``)."""
        with self._cond:
            workers = [*self._starting, *self._live]
        for worker in workers:
            worker.kill()

    def kill_busy(self) -> None:
        """Kill the containers booting or running a call (after ``stop``), skipping their
        exit hooks; idle ones are left to leave cleanly, running theirs."""
        with self._cond:
            workers = [*self._starting, *self._busy]
        for worker in workers:
            worker.kill()

    @property
    def finished(self) -> bool:
        with self._cond:
            return (self._draining and self._slots == 0 and self._exiting == 0
                    and not self._queue and not self._retrying)

    def _scale(self) -> None:
        """Start boots the queue needs; the caller holds the lock."""
        uncovered = len(self._queue) - self._idle_count() - self._booting
        wanted = min(uncovered, self.max_containers - self._slots)
        if not self._draining and time.monotonic() >= self._min_backoff_until:
            wanted = max(wanted, self.min_containers - self._slots)
        for _ in range(max(0, wanted)):
            self._slots += 1
            self._booting += 1
            threading.Thread(target=self._container_main, daemon=True,
                             name=f"container-{self.fn.tag}").start()

    def _idle_count(self) -> int:
        return len(self._live) - len(self._busy)

    # one container's life

    def _attach(self, container: Container) -> Worker:
        app = self.fn.app
        worker = Worker(container,
                        log_line=lambda _w, line: self._ctx.logs.write(app, line),
                        log_note=lambda line, level, log: self._ctx.logs.note(
                            app, line, level, log),
                        on_exit=lambda _w: self._wake(),
                        max_payload=self._ctx.booter.settings.max_payload_bytes,
                        requests=self._ctx.requests)
        with self._cond:
            if not self._stopped:
                self._starting.add(worker)
                return worker
        worker.kill()  # started while the server stopped: nobody will serve with it
        raise BootFailed(f"container {container.id} was stopped: {SHUTTING_DOWN}")

    def _stopping(self) -> bool:
        return self._stopped

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _container_main(self) -> None:
        t0 = time.monotonic()
        try:
            boot = self._ctx.booter.boot(self.fn, self._attach, self._stopping)
        except BootFailed as exc:
            self._boot_failed(exc.message, exc.blob, exc.logs)
            return
        except Exception as exc:  # an engine error must not kill the scheduler
            self._boot_failed(f"the {self._ctx.booter.engine.name} engine could not start a "
                              f"container for {self.fn.label}: {exc}", None, [])
            return
        boot.timings["boot_s"] = time.monotonic() - t0
        worker = boot.worker
        with self._cond:
            self._starting = {w for w in self._starting if w is not worker and w.alive}
            self._booting -= 1
            self._live.add(worker)  # from here the `finally` below gives the slot back
            self.counters["boots_ok"] += 1
            self._min_backoff_s = 5.0
        healthy = False
        try:
            self._record_boot(boot)
            healthy = self._serve(boot)
        except Exception:  # a server bug (the database failing?): the slot must come back
            logger.exception("container %s of %s stopped: the scheduler failed",
                             worker.id, self.fn.label)
        finally:
            with self._cond:
                self._leave(worker)
            try:
                worker.shutdown() if healthy else worker.kill()
            finally:
                with self._cond:
                    self._exiting -= 1

    def _leave(self, worker: Worker) -> None:
        """Give a leaving container's slot back, once; the caller holds the lock."""
        if worker not in self._live:
            return
        self._live.discard(worker)
        self._busy.discard(worker)
        self._slots -= 1
        self._exiting += 1  # a new boot may start; `finished` waits for the exit
        self._scale()
        self._cond.notify_all()

    def _record_boot(self, boot: Boot) -> None:
        fn, worker = self.fn, boot.worker
        worker.boot_timings = boot.timings
        worker.boot_id = self._ctx.db.add_boot(fn.app, fn.version, fn.tag, worker.id, boot.kind,
                                               True, boot.timings)
        worker.note(f"{boot.kind} boot ready in {boot.timings['boot_s'] * 1000:.0f} ms: "
                    f"{describe_timings(boot.timings)}", logger=logger)

    def _boot_failed(self, message: str, blob: bytes | None, logs: list[str]) -> None:
        fn = self.fn
        with self._cond:
            self._starting = {w for w in self._starting if w.alive}  # the boot's leftovers
            stopped = self._stopped
            first_cut = stopped and not self._noted_cut_boots
            self._noted_cut_boots |= stopped
        if not stopped:
            self._ctx.logs.note(fn.app, f"[{fn.tag}] coldsnap: boot failed: {message}",
                                logging.WARNING, logger)
        elif first_cut:  # not the boot's failure: say what happened, once per pool
            self._ctx.logs.note(fn.app, f"[{fn.tag}] coldsnap: containers still booting were "
                                f"stopped: {self._stop_reason}", logging.INFO, logger)
        if not stopped:  # at shutdown the database may be closing: not a failure to keep
            try:
                self._ctx.db.add_boot(fn.app, fn.version, fn.tag, "-", BootKind.FAILED, False, {},
                                      message)
            except Exception:  # the slot must come back, and the queue hear why
                logger.exception("could not record the failed boot of %s", fn.label)
        with self._cond:
            self._booting -= 1
            self._slots -= 1
            self.counters["boots_failed"] += 1
            self._min_backoff_until = time.monotonic() + self._min_backoff_s
            if self.min_containers and not self._draining:
                # Nothing else may wake the pool: try the warm containers again then.
                retry = threading.Timer(self._min_backoff_s + 0.05, self._rescale)
                retry.daemon = True
                retry.start()
            self._min_backoff_s = min(self._min_backoff_s * 2, 300.0)
            if self._slots == 0:  # nobody left who could serve the queue
                while self._queue:
                    self.counters["calls_failed"] += 1
                    call = self._queue.popleft()
                    for line in logs:
                        call.add_log(line)
                    call.fail(ApiError(BOOT_FAILED, message, blob))
            self._cond.notify_all()

    def _rescale(self) -> None:
        with self._cond:
            self._scale()

    def _next_call(self, worker: Worker) -> Call | None:
        """Wait for a call, and count the container busy; None when it should leave (it
        has left ``_live`` then)."""
        window = self.fn.options.scaledown_window
        with self._cond:
            while not self._queue and not worker.exited.is_set() and not self._draining:
                idle_for = time.monotonic() - worker.idle_since
                if idle_for >= window and self._slots > self.min_containers:
                    break  # scale down
                self._cond.wait(max(0.05, window - idle_for))
            if not self._queue or worker.exited.is_set():
                self._leave(worker)
                return None
            self._busy.add(worker)
            return self._queue.popleft()

    def _call_ended(self, worker: Worker) -> None:
        with self._cond:
            self._busy.discard(worker)

    def _serve(self, boot: Boot) -> bool:
        """Run calls until the container should leave; False if it broke."""
        worker = boot.worker
        while True:
            call = self._next_call(worker)
            if call is None:
                return worker.alive
            t0 = time.monotonic()
            if isinstance(call, lease_shim.LeaseCall):
                lease_shim.hold(call, worker)
                self._call_ended(worker)
                worker.calls_served += 1
                worker.idle_since = time.monotonic()
                if not worker.alive:
                    return False
                continue
            try:
                result = worker.run_call(call)
            except Exception as exc:  # a server bug must not leave the caller waiting
                self._call_ended(worker)
                logger.exception("the server failed running call %s in container %s",
                                 call.id, worker.id)
                worker.note(f"stopping: the server failed running call {call.id}: {exc!r}")
                self._fail(call, ApiError(
                    CONTAINER_DIED, f"the server failed running {call.label} in container "
                    f"{worker.id} ({type(exc).__name__}: {exc}); the container was stopped. "
                    "See the server log"))
                return False
            self._call_ended(worker)  # idle before its caller hears back: see Pool
            first_input_s = time.monotonic() - t0 if worker.calls_served == 1 else None
            if result.end is CallEnd.RESULT:
                delay = None if result.ok else self._requeue(call, scale=False)
                if delay is not None:  # retries=, as in Modal
                    worker.note(f"{call.label} raised (attempt {call.attempts} of "
                                f"{call.retries + 1}); trying again in {delay:g} s")
                else:
                    self._answer(call, result)  # the caller waits on no bookkeeping
            if first_input_s is not None:
                boot.timings["first_input_s"] = first_input_s
                self._ctx.db.update_boot_timings(worker.boot_id, boot.timings)
                worker.note(f"first input in {first_input_s * 1000:.0f} ms", to_caller=False)
            if result.end is CallEnd.RESULT:
                continue
            if result.end is CallEnd.TIMED_OUT:
                message = (f"call {call.id} to {call.label} ran longer than its timeout of "
                           f"{call.timeout_s:g} s; its container {worker.id} was stopped. "
                           "Raise timeout= in the decorator if the call needs longer")
                worker.note(f"call {call.id} timed out after {call.timeout_s:g} s; stopping")
                self._retry_or_fail(call, ApiError(TIMEOUT, message))
            else:
                message = (f"{result.message or 'the container died'} while running "
                           f"{call.label} (attempt {call.attempts} of {call.retries + 1}). "
                           f"See `coldsnap logs {call.app}`")
                self._retry_or_fail(call, ApiError(CONTAINER_DIED, message))
            return False

    def _answer(self, call: Call, result: CallResult) -> None:
        if result.ok:
            outcome = Outcome(ok=True, blob=result.blob)
            key = "calls_ok"
        else:
            error = ApiError(REMOTE, f"{call.label} raised an exception", result.blob,
                             notes=[f"coldsnap: {text}" for text in result.limits])
            outcome, key = Outcome(ok=False, error=error), "calls_error"
        call.finish(outcome)
        with self._cond:
            self.counters[key] += 1

    def _retry_or_fail(self, call: Call, error: ApiError) -> None:
        if self._requeue(call) is not None:
            return
        with self._cond:
            if call.done.is_set():
                return
            self.counters["calls_failed"] += 1
        call.fail(error)

    def _requeue(self, call: Call, scale: bool = True) -> float | None:
        """Queue ``call`` again after its backoff (``Call.retry_delay``), first in line,
        if it has attempts left: the backoff, or None.

        ``scale=False`` when the container that ran it lives on and can take it.
        """
        delay = call.retry_delay
        with self._cond:
            if call.done.is_set() or delay is None or self._stopped:
                return None
            self._retrying += 1
        timer = threading.Timer(delay, self._retry_now, args=(call, scale))
        timer.daemon = True
        timer.start()
        return delay

    def _retry_now(self, call: Call, scale: bool) -> None:
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
            if scale or self._idle_count() == 0:
                self._scale()
            self._cond.notify()

    def _fail(self, call: Call, error: ApiError) -> None:
        with self._cond:
            self.counters["calls_failed"] += 1
        call.fail(error)

    def lease(self, timeout_s: float | None) -> lease_shim.Lease:
        return lease_shim.lease(self, timeout_s)

    # reporting

    def busy(self) -> bool:
        """True while a container boots or runs a call, or a call waits."""
        with self._cond:
            return bool(self._queue or self._booting or self._busy or self._retrying)

    def stats(self) -> dict[str, Any]:
        with self._cond:
            containers = [
                {"id": w.id, "state": "busy" if w in self._busy else "idle",
                 "calls": w.calls_served, "boot": describe_timings(w.boot_timings)}
                for w in self._live
            ]
            return {
                "app": self.fn.app, "tag": self.fn.tag, "version": self.fn.version,
                "queued": len(self._queue), "booting": self._booting,
                "containers": containers, "draining": self._draining,
                "min_containers": self.min_containers, "max_containers": self.max_containers,
                **self.counters,
            }
