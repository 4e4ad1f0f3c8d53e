"""One function version's queue and containers: the scheduler.

Each container has a thread that boots it and then takes inputs from the queue
while it has a free input slot (``max_inputs`` of them, 1 unless the function is
``@coldsnap.concurrent``), so a container with room is reused simply by being the
one that waits. An input is a call (run on the container's thread, or on a thread
of its own when the container runs several) or a lease (``Pool.lease``: a slot held
for the HTTP gateway). ``_scale`` boots containers so that each runs about
``target_inputs`` (default ``max_inputs``) of the queued and running inputs, up to
max_containers, and keeps min_containers warm. An idle container leaves after
scaledown_window. How an input ends (answer, retry, failure) is in pool_inputs.py.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from coldsnap.engine import Container
from coldsnap.server.boot import Boot, Booter, BootKind
from coldsnap.server.calls import Call
from coldsnap.server.errors import ApiError
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.lease import Lease, LeaseRequest
from coldsnap.server.logs import LogBook
from coldsnap.server.pool_boots import PoolBoots
from coldsnap.server.pool_inputs import QueueItem
from coldsnap.server.state import StateDB
from coldsnap.server.worker import BootFailed, ContainerRequests, Worker
from coldsnap.wire.errors import TIMEOUT, UNAVAILABLE
from coldsnap.wire.timings import describe_timings

__all__ = ["DEFAULT_MAX_CONTAINERS", "Lease", "Pool", "PoolContext"]

DEFAULT_MAX_CONTAINERS = 32
SHUTTING_DOWN = "the coldsnap server is shutting down"

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class PoolContext:
    booter: Booter
    db: StateDB
    logs: LogBook
    requests: ContainerRequests  # answers what a container asks while it runs a call
    # A new pool takes the containers a restarted control plane found for it (Pool.adopt),
    # and each container's boot is told where it is kept for that (fleet/takeover.py).
    adopt: Callable[[Pool], None] = lambda pool: None
    booted: Callable[[FunctionSpec, Boot], None] = lambda fn, boot: None


class Pool(PoolBoots):
    """The queue of one function version and its containers: ``submit`` queues a call,
    ``lease`` waits for an input slot, ``drain`` finishes queued inputs but takes no
    new ones, ``stop`` fails them too."""

    # Invariants, whenever _cond is free:
    # - _slots == _booting + len(_live) <= max_containers: only _scale takes slots, each
    #   held until the boot fails or the container leaves _live; a container that left
    #   is in _exiting until it exited (so max_containers + _exiting may run a moment).
    # - _inputs[w] (0..max_inputs) counts the inputs live container w runs: calls and
    #   held leases. A slot is free before its caller hears back, so a caller's next
    #   call finds it instead of booting another.
    # - _retiring containers (one timed out, died, or the server failed it) take no
    #   more inputs and count for nothing in _scale; their thread makes them leave, and
    #   forgets the reason once their inputs ended (they read it for their messages).
    # - A container leaves _live in the critical section that decided it leaves
    #   (_leave), so idle containers scaling down at once can't go below min_containers.
    # - boots_ok + boots_failed + _booting == the boots _scale started; each call the
    #   pool ends is counted once in calls_ok, calls_error or calls_failed (stop() too),
    #   not one cancelled while queued; each released lease once in http_requests.
    #   _retrying calls are in no queue nor container.

    def __init__(self, fn: FunctionSpec, ctx: PoolContext) -> None:
        self.fn = fn
        self._ctx = ctx
        self._cond = threading.Condition()
        self._queue: deque[QueueItem] = deque()
        self._live: set[Worker] = set()
        self._starting: set[Worker] = set()  # containers of boots in progress
        self._stopped = False  # the server is shutting down: no new containers
        self._slots = 0  # booting + live
        self._exiting = 0  # containers told to leave that have not exited yet
        self._booting = 0
        self._inputs: dict[Worker, int] = {}  # live container -> inputs it runs
        self._retiring: dict[Worker, str] = {}  # live container -> why it takes no more
        self._cut_by_stop: set[Worker] = set()  # killed by `kill`: their calls hear the stop
        self._draining = False
        self._retrying = 0  # calls waiting out a retry's backoff, in no queue meanwhile
        self._stop_reason = ""
        self._noted_cut_boots = False  # the log said once why boots were cut short
        self._min_backoff_until = 0.0
        self._min_backoff_s = 5.0
        self.counters = {"calls_ok": 0, "calls_error": 0, "calls_failed": 0,
                         "http_requests": 0, "boots_ok": 0, "boots_failed": 0}
        self.counting_since = time.time()  # counters are per pool: a deploy, drain or restart
        opts = fn.options
        self.max_containers = opts.max_containers or DEFAULT_MAX_CONTAINERS
        self.min_containers = min(opts.min_containers, self.max_containers)
        self.max_inputs = opts.input_slots  # @coldsnap.batched: a batch's worth
        self.target_inputs = opts.target_inputs_per_container
        ctx.adopt(self)
        with self._cond:
            self._scale()

    # the queue

    def submit(self, call: Call) -> None:
        with self._cond:
            self._refuse_if_draining()
            self._queue.append(call)
            self._scale()
            self._cond.notify_all()

    def lease(self, timeout_s: float | None) -> Lease:
        """Wait for an input slot of a live container, queued like a call (booting one
        when needed); ApiError BOOT_FAILED, UNAVAILABLE (draining, stopped) or TIMEOUT
        (no slot within ``timeout_s``: the request leaves the queue)."""
        request = LeaseRequest()
        with self._cond:
            self._refuse_if_draining()
            self._queue.append(request)
            self._scale()
            self._cond.notify_all()
        request.done.wait(timeout_s)
        with self._cond:  # a grant happens under the lock: no slot is lost to the race
            if not request.done.is_set():
                self._queue.remove(request)
                raise ApiError(TIMEOUT, (
                    f"no container of {self.fn.label} had a free input slot within "
                    f"{timeout_s:g} s ({len(self._live)} running, {self._booting} booting, "
                    f"max_containers={self.max_containers}, max_inputs={self.max_inputs}); "
                    "try again, or raise max_containers or @coldsnap.concurrent(max_inputs=)"))
        if request.error is not None:
            raise request.error
        assert request.lease is not None
        return request.lease

    def _refuse_if_draining(self) -> None:
        if self._draining:
            raise ApiError(UNAVAILABLE, f"{self.fn.label} version {self.fn.version[:12]} "
                           "is draining; call again to reach the current version")

    def cancel(self, call: Call) -> None:
        """Drop a call whose caller stopped waiting, if no container took it yet."""
        with self._cond:
            if call in self._queue:
                self._queue.remove(call)

    def drain(self) -> None:
        """Take no new inputs; finish queued ones; containers leave once idle."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    def stop(self, reason: str) -> None:
        """Fail queued inputs and start no more containers; containers leave once idle
        and boots in progress end (``kill`` ends what is left)."""
        with self._cond:
            self._draining = True
            self._stopped = True
            self._stop_reason = reason
            while self._queue:
                self._fail_queued(self._queue.popleft(), ApiError(UNAVAILABLE, reason))
            self._cond.notify_all()

    def kill(self) -> None:
        """Kill every container of this pool, booting or live (after ``stop``); the
        calls they still run end with the stop's reason, not as container deaths."""
        with self._cond:
            workers = [*self._starting, *self._live]
            # Not those `kill_busy` killed already (an app's deletion): they died of that.
            self._cut_by_stop.update(w for w in self._live if w.alive)
        for worker in workers:
            worker.kill()

    def kill_busy(self) -> None:
        """Kill the containers booting or running an input (after ``stop``), skipping
        their exit hooks; idle ones are left to leave cleanly, running theirs."""
        with self._cond:
            workers = [*self._starting, *(w for w, n in self._inputs.items() if n)]
        for worker in workers:
            worker.kill()

    @property
    def finished(self) -> bool:
        with self._cond:
            return (self._draining and self._slots == 0 and self._exiting == 0
                    and not self._queue and not self._retrying)

    def _scale(self) -> None:
        """Start the boots the inputs need; the caller holds the lock."""
        serving = [w for w in self._live
                   if w not in self._retiring and not w.container.draining]
        running = sum(self._inputs.get(w, 0) for w in serving)
        needed = math.ceil((len(self._queue) + running) / self.target_inputs)
        wanted = min(needed - len(serving) - self._booting, self.max_containers - self._slots)
        if not self._draining and time.monotonic() >= self._min_backoff_until:
            wanted = max(wanted, self.min_containers - self._slots)
        for _ in range(max(0, wanted)):
            self._slots += 1
            self._booting += 1
            threading.Thread(target=self._container_main, daemon=True,
                             name=f"container-{self.fn.tag}").start()

    # one container's life

    def _attach(self, container: Container) -> Worker:
        app = self.fn.app
        worker = Worker(container,
                        log_line=lambda _w, line: self._ctx.logs.write(app, line),
                        log_note=lambda line, level, log: self._ctx.logs.note(
                            app, line, level, log),
                        on_exit=lambda _w: self._wake(),
                        max_payload=self._ctx.booter.settings.max_payload_bytes,
                        requests=self._ctx.requests, max_inputs=self.max_inputs)
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
        self._run_container(boot)

    def adopt(self, container: Container, kind: BootKind, timings: dict[str, float],
              web_ports: dict[str, int], boot_id: int) -> bool:
        """Serve with a ready container the control plane before this one booted
        (fleet/takeover.py); False when the pool can't take it (the caller stops it)."""
        with self._cond:
            if self._stopped or self._slots >= self.max_containers:
                return False
            self._slots += 1
            self._booting += 1
        try:
            worker = self._attach(container)
        except BootFailed:
            with self._cond:
                self._slots -= 1
                self._booting -= 1
            return False
        worker.web_ports, worker.boot_id = web_ports, boot_id
        threading.Thread(target=self._run_container, args=(Boot(worker, kind, timings), True),
                         daemon=True, name=f"container-{self.fn.tag}").start()
        return True

    def _run_container(self, boot: Boot, adopted: bool = False) -> None:
        """Serve with a ready container until it leaves, then end it."""
        worker = boot.worker
        with self._cond:
            self._starting = {w for w in self._starting if w is not worker and w.alive}
            self._booting -= 1
            self._live.add(worker)  # from here the `finally` below gives the slot back
            self._inputs[worker] = 0
            self.counters["boots_ok"] += 1
            self._min_backoff_s = 5.0
        healthy = False
        try:
            self._record_boot(boot, adopted)
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
                    self._retiring.pop(worker, None)  # its inputs ended: the reason did its job
                    self._cut_by_stop.discard(worker)

    def _leave(self, worker: Worker) -> None:
        """Give a leaving container's slot back, once; the caller holds the lock."""
        if worker not in self._live:
            return
        self._live.discard(worker)
        self._inputs.pop(worker, None)
        self._slots -= 1
        self._exiting += 1  # a new boot may start; `finished` waits for the exit
        self._scale()
        self._cond.notify_all()

    def _rescale(self) -> None:
        with self._cond:
            self._scale()

    # inputs in a container

    def _serve(self, boot: Boot) -> bool:
        """Take inputs until the container should leave; False if it broke."""
        worker = boot.worker
        threads: list[threading.Thread] = []
        while True:
            item = self._next_input(worker)
            if item is None:
                break
            if isinstance(item, LeaseRequest):
                continue  # granted in _next_input: the lease's holder uses the slot
            if self.max_inputs == 1:
                self._run_input(boot, item)
                continue
            thread = threading.Thread(target=self._run_input, args=(boot, item), daemon=True,
                                      name=f"input-{worker.id}")
            thread.start()
            threads = [t for t in threads if t.is_alive()] + [thread]
        for thread in threads:  # a broken container's other inputs end with it
            thread.join()
        with self._cond:
            broken = worker in self._retiring
        return worker.alive and not broken

    def _next_input(self, worker: Worker) -> QueueItem | None:
        """Wait for an input this container should take, and count it; None when the
        container should leave (it has left ``_live`` then)."""
        window = self.fn.options.scaledown_window
        with self._cond:
            while True:
                running = self._inputs.get(worker, 0)
                if worker.exited.is_set() or worker in self._retiring:
                    break
                leaving = worker.container.draining  # its host is draining (fleet.py)
                if self._queue and not leaving and self._takes_more(worker, running):
                    return self._take(worker)
                idle_for = time.monotonic() - worker.idle_since
                if running == 0 and (leaving or not self._queue and (
                        self._draining or (idle_for >= window
                                           and self._slots > self.min_containers))):
                    break  # drained, its host drains, or scale down
                # At most a second: a host's drain wakes nobody.
                self._cond.wait(min(1.0, max(0.05, window - idle_for)) if running == 0 else 1.0)
            self._leave(worker)
            return None

    def _take(self, worker: Worker) -> QueueItem:
        """The queue's first input, counted in ``worker``'s slots; the caller holds the lock."""
        item = self._queue.popleft()
        self._inputs[worker] += 1
        if isinstance(item, LeaseRequest):
            worker.lease_started()
            item.grant(Lease(worker, self._release_lease, self._lease_lost,
                             self._lease_timed_out))
        return item

    # reporting

    def busy(self) -> bool:
        """True while a container boots or runs an input, or an input waits."""
        with self._cond:
            return bool(self._queue or self._booting or any(self._inputs.values())
                        or self._retrying)

    def stats(self) -> dict[str, Any]:
        with self._cond:
            containers = [
                {"id": w.id, "state": "busy" if self._inputs.get(w) else "idle",
                 "inputs": self._inputs.get(w, 0), "calls": w.calls_served,
                 "boot": describe_timings(w.boot_timings),
                 **({"host": w.container.host} if w.container.host else {})}
                for w in self._live
            ]
            return {
                "app": self.fn.app, "tag": self.fn.tag, "version": self.fn.version,
                "queued": len(self._queue), "booting": self._booting,
                "containers": containers, "draining": self._draining,
                "min_containers": self.min_containers, "max_containers": self.max_containers,
                "max_inputs": self.max_inputs, "target_inputs": self.target_inputs,
                **self.counters, "counting_since": self.counting_since,
            }
