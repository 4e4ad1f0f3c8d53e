"""The server's own log: how its records read and where they go, set up once at startup.

Modules log through ``logging.getLogger(__name__)`` (``coldsnap.server.daemon``,
``coldsnap.server.pool``, ...); ``configure`` sends those records to stderr, which
a background server has pointed at ``<state_dir>/server.log``. A line reads::

    2025-01-31T14:02:03.517+00:00 INFO coldsnap.server.daemon: coldsnap server 4242 listening on ...

Containers' own lines are not here: they are kept per app (``logs.LogBook``) for
``coldsnap logs``; the server's notes about them (``LogBook.note``: a boot ready, a
boot failed, a snapshot fallback) are here too, at their level, under the logger of
the module that wrote them.
"""

from __future__ import annotations

import datetime
import logging
import sys
import threading
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Other libraries' loggers write at this level or above, whatever COLDSNAP_LOG_LEVEL
# says: DEBUG is for coldsnap's own records, not a flood from its dependencies.
LIBRARY_LEVEL = logging.WARNING

logger = logging.getLogger(__name__)


class IsoFormatter(logging.Formatter):
    """Timestamps in ISO 8601 with milliseconds and the local UTC offset: lines from
    different hosts, or either side of a DST change, still compare."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        when = datetime.datetime.fromtimestamp(record.created).astimezone()
        return when.isoformat(timespec="milliseconds")


def configure(level: str, stream: TextIO | None = None) -> logging.Handler:
    """Send coldsnap's records at ``level`` and up (a name from ``settings.LOG_LEVELS``),
    and other libraries' warnings, to ``stream`` (stderr); returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(IsoFormatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(LIBRARY_LEVEL)
    logging.getLogger("coldsnap").setLevel(level)
    # A thread that dies of an exception is a server bug: its traceback joins the log,
    # timestamped, instead of going to bare stderr.
    threading.excepthook = _log_thread_crash
    return handler


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logger.error("thread %s died", name, exc_info=args.exc_value)
