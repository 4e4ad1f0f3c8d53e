"""Log lines per app: a bounded ring others can read from a position and follow.

Each line is kept as it was written (``[cs-abc] hello``: the container id first)
with the wall-clock time it reached the server, for ``coldsnap logs --timestamps``.
The server's own notes about an app (``[cs-abc] coldsnap: boot failed: ...``) go
through ``LogBook.note``: into the app's log, and into the server's log at a level.
Given a directory, the book keeps each app's lines on disk too (``log_files.py``):
after a restart an app's log starts with the lines from before it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

from coldsnap.server.log_files import LogFile, LogLine


class AppLogs:
    """The last ``limit`` lines of one app, each numbered so followers can resume;
    with a ``file``, those it held before come first, and new ones go there too."""

    def __init__(self, limit: int = 10_000, file: LogFile | None = None) -> None:
        self._lines: deque[tuple[int, LogLine]] = deque(maxlen=limit)
        self._next = 0
        self._cond = threading.Condition()
        self._file = file
        for line in file.load(limit) if file is not None else ():
            self._lines.append((self._next, line))
            self._next += 1

    def append(self, line: str) -> None:
        with self._cond:
            logged = LogLine(time.time(), line)
            self._lines.append((self._next, logged))
            self._next += 1
            if self._file is not None:
                self._file.append(logged)
            self._cond.notify_all()

    def close(self) -> None:
        """Close its file; lines appended later open it again."""
        with self._cond:
            if self._file is not None:
                self._file.close()

    def tail(self, n: int) -> tuple[list[str], int]:
        """The last ``n`` lines and the position after them."""
        lines, position = self.tail_timed(n)
        return [line.text for line in lines], position

    def since(self, position: int, wait_s: float) -> tuple[list[str], int]:
        """Lines from ``position`` on, waiting up to ``wait_s`` for the first one."""
        lines, position = self.since_timed(position, wait_s)
        return [line.text for line in lines], position

    def tail_timed(self, n: int) -> tuple[list[LogLine], int]:
        """``tail`` with each line's arrival time."""
        with self._cond:
            lines = [line for _, line in list(self._lines)[-n:]] if n > 0 else []
            return lines, self._next

    def since_timed(self, position: int, wait_s: float) -> tuple[list[LogLine], int]:
        """``since`` with each line's arrival time."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            while self._next <= position:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return [], position
                self._cond.wait(remaining)
            lines = [line for seq, line in self._lines if seq >= position]
            return lines, self._next


class LogBook:
    """AppLogs by app name. ``echo=False`` keeps notes out of the server's log (tests);
    ``directory``: where each app's lines are kept across restarts (none: memory only)."""

    def __init__(self, limit_per_app: int = 10_000, echo: bool = True,
                 directory: Path | None = None) -> None:
        self._echo = echo
        self._apps: dict[str, AppLogs] = {}
        self._lock = threading.Lock()
        self._limit = limit_per_app
        self._directory = directory

    def app(self, name: str) -> AppLogs:
        with self._lock:
            logs = self._apps.get(name)
            if logs is None:  # app names are file names (wire/names.py's rule)
                file = None if self._directory is None else LogFile(
                    self._directory / f"{name}.log")
                logs = self._apps[name] = AppLogs(self._limit, file)
            return logs

    def has(self, name: str) -> bool:
        """Whether ``name`` has a log (in memory, or a file of an earlier run): an app
        only looked up for its sandboxes has one though it was never deployed."""
        with self._lock:
            if name in self._apps:
                return True
        return self._directory is not None and (self._directory / f"{name}.log").is_file()

    def close(self) -> None:
        """Close the apps' files (the server stops)."""
        with self._lock:
            apps = list(self._apps.values())
        for logs in apps:
            logs.close()

    def write(self, app: str, line: str) -> None:
        """A line of the app's own (its containers' output, its build): its log only."""
        self.app(app).append(line)

    def note(self, app: str, line: str, level: int, logger: logging.Logger) -> None:
        """A line of the server's own about ``app``: into the app's log as it is, and into
        the server's log as ``APP LINE`` at ``level``, under the caller's ``logger``."""
        self.app(app).append(line)
        if self._echo:
            logger.log(level, "%s %s", app, line)
