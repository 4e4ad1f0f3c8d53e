"""An app's container output on the client while it runs (`coldsnap run`, and
``app.run()`` inside ``coldsnap.enable_output()``), as Modal's `modal run` shows it.

Two sources print the same lines: each call's reply carries the lines its input
printed (``Client`` echoes them), and a follower thread streams the whole app's
log, which also has what no call of ours returns (scheduled runs, spawned calls,
web requests). ``Echo`` pairs them, so each line shows once: a line one source
printed is skipped when the other brings it. Example::

    with follow_app_output(client, "my-app-run-ab12cd"):
        f.remote()   # its lines print as the container writes them, and only once
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from coldsnap.wire import ops

logger = logging.getLogger(__name__)

# How many lines one source may have printed that the other has not brought (yet):
# lines only the follower sees (a scheduled run's) must not pile up forever.
_UNPAIRED_LIMIT = 10_000
REPLY, FOLLOWER = "reply", "follower"


class Echo:
    """Prints container lines to stderr, each once while a follower runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._followers = 0
        self._printed: dict[str, Counter[str]] = {REPLY: Counter(), FOLLOWER: Counter()}
        self._order: dict[str, deque[str]] = {REPLY: deque(), FOLLOWER: deque()}

    def show(self, lines: Iterable[str], source: str) -> None:
        other = FOLLOWER if source == REPLY else REPLY
        with self._lock:
            for line in lines:
                if self._followers and self._printed[other][line] > 0:
                    self._printed[other][line] -= 1  # the other source printed it
                    continue
                print(line, file=sys.stderr, flush=True)
                if self._followers:
                    self._remember(source, line)

    def _remember(self, source: str, line: str) -> None:
        order, printed = self._order[source], self._printed[source]
        order.append(line)
        printed[line] += 1
        if len(order) > _UNPAIRED_LIMIT:
            oldest = order.popleft()
            if printed[oldest] > 0:
                printed[oldest] -= 1

    def follower_started(self) -> None:
        with self._lock:
            self._followers += 1

    def follower_ended(self) -> None:
        with self._lock:
            self._followers -= 1
            if not self._followers:
                for source in (REPLY, FOLLOWER):
                    self._printed[source].clear()
                    self._order[source].clear()


ECHO = Echo()


class LogStream(Protocol):
    """What the follower needs of the client (``Client.stream``)."""

    def stream(self, op: str, **fields: Any) -> Iterator[dict[str, Any]]: ...


@contextlib.contextmanager
def follow_app_output(client: LogStream, app: str) -> Iterator[None]:
    """While the block runs, print what ``app``'s containers write (from now on)."""
    stop = threading.Event()
    ECHO.follower_started()
    thread = threading.Thread(target=_follow, args=(client, app, stop), daemon=True,
                              name=f"output-{app}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5.0)  # the server sends a reply at least every second
        ECHO.follower_ended()


def _follow(client: LogStream, app: str, stop: threading.Event) -> None:
    # The replies' generator closes its socket when it is dropped, on return.
    try:
        for reply in client.stream(ops.LOGS, app=app, follow=True, tail=0):
            ECHO.show(reply.get("lines") or (), FOLLOWER)
            if stop.is_set():
                return
    except Exception as exc:  # the app was stopped, the server went away: output ends
        if not stop.is_set():
            logger.debug("following the output of app %s ended: %s", app, exc)
