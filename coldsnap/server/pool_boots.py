"""How a pool's boots end: one that came up is recorded (the database, the logs, the
fleet's takeover), one that failed gives its slot back, backs off the warm
containers' next try and, with no container left to serve them, fails the queued
calls with its error. ``Pool`` inherits these (and PoolInputs' through them); they
share its lock and its state."""

from __future__ import annotations

import logging
import threading
import time

from coldsnap.server.boot import Boot, BootKind
from coldsnap.server.errors import ApiError
from coldsnap.server.pool_inputs import PoolInputs
from coldsnap.server.worker import Worker
from coldsnap.wire.errors import BOOT_FAILED
from coldsnap.wire.timings import describe_timings

logger = logging.getLogger("coldsnap.server.pool")


class PoolBoots(PoolInputs):
    """Recording boots and their failures; see ``Pool`` for the state."""

    min_containers: int
    _starting: set[Worker]
    _noted_cut_boots: bool
    _booting: int
    _slots: int
    _min_backoff_until: float
    _min_backoff_s: float

    def _rescale(self) -> None:
        raise NotImplementedError

    def _record_boot(self, boot: Boot, adopted: bool = False) -> None:
        fn, worker = self.fn, boot.worker
        worker.boot_timings = boot.timings
        host = f" on host {worker.container.host}" if worker.container.host else ""
        if adopted:  # its boot is in the db already
            worker.note(f"adopted after a control plane restart: a {boot.kind} boot{host}, "
                        "ready since before it", to_caller=False, logger=logger)
            return
        worker.boot_id = self._ctx.db.add_boot(fn.app, fn.version, fn.tag, worker.id, boot.kind,
                                               True, boot.timings, host=worker.container.host)
        worker.note(f"{boot.kind} boot ready{host} in {boot.timings['boot_s'] * 1000:.0f} ms: "
                    f"{describe_timings(boot.timings)}", logger=logger)
        self._ctx.booted(fn, boot)

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
                    self._fail_queued(self._queue.popleft(),
                                      ApiError(BOOT_FAILED, message, blob), logs)
            self._cond.notify_all()
