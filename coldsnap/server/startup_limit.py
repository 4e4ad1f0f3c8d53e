"""How long a container's startup may take: ``startup_timeout=``, else ``timeout=``
(Modal's rule), never more than the server's COLDSNAP_BOOT_TIMEOUT_S.

Startup is the user's code before the container takes inputs: the imports and the
``@enter`` hooks. A boot spends it in the waits for the container's handshake and its
``ready`` (``StartupClock.spend``); coldsnap's own work between them (a snapshot's
dump, the restore) is not counted. A container that runs the imports anew starts a
fresh clock (``restart``); a restore made right after the dump continues the clock of
the container that was dumped.

Example::

    clock = StartupClock(fn, settings.boot_timeout_s)
    clock.restart()
    header, _ = clock.spend(lambda left: worker.expect({control.READY}, left))
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

from coldsnap.server.functions import FunctionSpec
from coldsnap.server.worker import BootFailed, BootTimedOut

T = TypeVar("T")


class StartupTimedOut(BootFailed):
    """The container's startup took longer than its limit; the container was stopped."""


class StartupClock:
    """The startup time one boot's container has left, and the error when it runs out."""

    def __init__(self, fn: FunctionSpec, server_limit_s: float) -> None:
        self.fn = fn
        self.server_limit_s = server_limit_s
        options = fn.options
        self.knob = "startup_timeout" if options.startup_timeout is not None else "timeout"
        own = options.startup_timeout if options.startup_timeout is not None else options.timeout
        self.own_limit_s = float(own) if own is not None else math.inf
        self.limit_s = min(self.own_limit_s, server_limit_s)
        self.spent_s = 0.0

    def restart(self) -> None:
        """A new container: its imports and hooks get the whole limit."""
        self.spent_s = 0.0

    def spend(self, wait: Callable[[float], T]) -> T:
        """Run ``wait(seconds left)``, counting its time as startup; a timeout in it
        becomes ``StartupTimedOut`` saying which limit it hit and how to raise it."""
        t0 = time.monotonic()
        try:
            return wait(max(0.0, self.limit_s - self.spent_s))
        except BootTimedOut as exc:
            raise StartupTimedOut(self.exceeded(exc.container_id)) from None
        finally:
            self.spent_s += time.monotonic() - t0

    def exceeded(self, container_id: str) -> str:
        """What the caller, the app's log and `apps stats` say when the limit ran out."""
        limit = f"{self.limit_s:g} s"
        head = (f"container startup of {self.fn.label} (imports and @enter hooks) took over "
                f"{limit}; container {container_id} was stopped")
        if self.own_limit_s > self.server_limit_s:
            asked = (f"it caps {self.knob}={self.own_limit_s:g}" if self.own_limit_s < math.inf
                     else "the function sets no startup_timeout= or timeout=")
            return (f"{head} (the server's COLDSNAP_BOOT_TIMEOUT_S={self.server_limit_s:g}; "
                    f"{asked}): raise COLDSNAP_BOOT_TIMEOUT_S on the server if the "
                    "startup is meant to be this slow")
        if self.knob == "startup_timeout":
            return (f"{head} (startup_timeout={self.own_limit_s:g}): raise startup_timeout= "
                    "if the startup is meant to be this slow")
        return (f"{head} (timeout={self.own_limit_s:g} bounds startup too; startup_timeout= "
                "sets startup's limit apart): raise startup_timeout= if the startup is "
                "meant to be this slow")
