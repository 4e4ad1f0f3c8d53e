"""When a host agent that did not answer in time counts as lost, and when only as slow.

A call to an agent that times out says little by itself: a loaded machine, a long
garbage collection or a busy store can make one answer late. So a timeout fails that
one operation (``HostSlow``, whose message says the host was slow) and the host stays
in the fleet, unless Ray says its node is dead, or it also failed ``LOST_AFTER``
liveness checks in a row (a quick ``info`` call after each timeout). A dead actor
(``ActorDiedError``) is lost at once, without this (remote_agent.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

LOST_AFTER = 3  # failed liveness checks in a row, with no answer between: the host is lost
CHECK_S = 10.0  # a liveness check's own time limit

logger = logging.getLogger(__name__)


class HostSlow(RuntimeError):
    """A host agent did not answer one call in time; it stays in the fleet."""


class Liveness:
    """One agent's record of timed-out calls and liveness checks (see the module)."""

    def __init__(self, host: str, node_alive: Callable[[], bool], check: Callable[[], bool],
                 lost_after: int = LOST_AFTER) -> None:
        self.host = host
        self._node_alive = node_alive  # whether Ray lists the host's node as alive
        self._check = check  # whether the agent answers a quick call now
        self._lost_after = lost_after
        self._failed = 0  # liveness checks failed in a row
        self._lock = threading.Lock()

    def answered(self) -> None:
        """A call was answered: the host lives."""
        with self._lock:
            self._failed = 0

    def timed_out(self, method: str, timeout: float) -> str:
        """A call to ``method`` was not answered within ``timeout`` s: the reason the host
        is lost, or raise HostSlow when it is only slow."""
        slow = f"host {self.host} was slow: it did not answer {method} within {timeout:g} s"
        if not self._node_alive():
            return f"host {self.host} is gone: Ray lists its node as dead ({slow})"
        if self._check():
            self.answered()
            raise HostSlow(f"{slow} (it answers other calls: it stays in the fleet)")
        with self._lock:
            self._failed += 1
            failed = self._failed
        if failed >= self._lost_after:
            return f"{slow}, nor {failed} liveness checks in a row"
        logger.warning("%s, nor a liveness check (%d of %d before it counts as lost)", slow,
                       failed, self._lost_after)
        raise HostSlow(f"{slow} (it stays in the fleet unless it misses "
                       f"{self._lost_after - failed} more liveness check(s))")
