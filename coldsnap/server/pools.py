"""Every ``Pool`` of the server: current ones by function version, retired ones draining."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from coldsnap.server.functions import FunctionSpec
from coldsnap.server.pool import Pool, PoolContext

PoolKey = tuple[str, str, str]  # (app, version, tag)


class Pools:
    """The pools of function versions that take calls, and the retired ones.

    A pool is retired when a newer version of its app is deployed, or the app is
    stopped or drained: it takes no new calls and is forgotten once its
    containers are gone. Only ``Deploys`` creates and retires pools.
    """

    def __init__(self, ctx: PoolContext) -> None:
        self._ctx = ctx
        self._current: dict[PoolKey, Pool] = {}
        self._retired: list[Pool] = []
        self._lock = threading.Lock()

    def get(self, key: PoolKey, spec: Callable[[], FunctionSpec]) -> Pool:
        """The pool of ``key``, made from ``spec()`` if there is none yet."""
        with self._lock:
            pool = self._current.get(key)
            if pool is None:
                self._forget_finished()
                pool = self._current[key] = Pool(spec(), self._ctx)
            return pool

    def retire(self, app: str, keep_version: str | None = None) -> list[Pool]:
        """Drain the app's pools (but ``keep_version``'s); they finish their queued calls."""
        with self._lock:
            retired = [self._current.pop(key) for key in list(self._current)
                       if key[0] == app and key[1] != keep_version]
            self._retired.extend(retired)
        for pool in retired:
            pool.drain()
        return retired

    def of_app(self, app: str) -> list[Pool]:
        """The app's pools, retired ones included."""
        return [pool for pool in self.all() if pool.fn.app == app]

    def all(self) -> list[Pool]:
        with self._lock:
            self._forget_finished()
            return [*self._current.values(), *self._retired]

    def busy(self) -> bool:
        """True while any container boots or runs a call, or a call waits."""
        return any(pool.busy() for pool in self.all())

    def end(self, pools: list[Pool], reason: str, grace_s: float,
            kill_busy: bool = False) -> None:
        """Stop ``pools`` (their queued calls fail with ``reason``); give their containers
        ``grace_s`` to leave, running their exit hooks; then kill what is left.
        ``kill_busy``: kill the containers running a call or booting at once."""
        for pool in pools:
            pool.stop(reason)
            if kill_busy:
                pool.kill_busy()
        wait_finished(pools, grace_s)
        for pool in pools:  # stragglers: busy or booting past the grace period
            pool.kill()
        wait_finished(pools, 10.0)  # their threads notice and unwind

    def _forget_finished(self) -> None:
        self._retired = [pool for pool in self._retired if not pool.finished]


def wait_finished(pools: list[Pool], wait_s: float, poll_s: float = 0.05) -> bool:
    """Wait up to ``wait_s`` for every pool to finish; True if they all did."""
    deadline = time.monotonic() + wait_s
    while not all(p.finished for p in pools):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True
