"""An app's log lines on disk, so ``coldsnap logs`` shows them across server restarts.

``<state_dir>/logs/<app>.log`` holds one JSON line per log line (``[time, text]``);
past ``FILE_CAP_BYTES`` it becomes ``<app>.log.1`` (the one before is dropped) and a
new file starts: an app's log takes at most twice the cap on disk. A disk that fails
(full, removed) stops the writing, with a warning; logging goes on in memory.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import IO, NamedTuple

logger = logging.getLogger(__name__)

FILE_CAP_BYTES = 4 * 1024 * 1024


class LogLine(NamedTuple):
    time: float  # time.time() when the line reached the server
    text: str


class LogFile:
    """One app's log file and its previous one. Not thread-safe: its AppLogs locks."""

    def __init__(self, path: Path, cap_bytes: int = FILE_CAP_BYTES) -> None:
        self.path = path
        self.previous = path.with_name(path.name + ".1")
        self._cap = cap_bytes
        self._handle: IO[str] | None = None
        self._broken = False

    def load(self, limit: int) -> list[LogLine]:
        """The last ``limit`` lines written, oldest first; a damaged line is skipped."""
        lines: deque[LogLine] = deque(maxlen=limit)
        for path in (self.previous, self.path):
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    for raw in handle:
                        line = _parse(raw)
                        if line is not None:
                            lines.append(line)
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("can't read the app log %s (%s): its older lines are not "
                               "shown", path, exc)
        return list(lines)

    def append(self, line: LogLine) -> None:
        if self._broken:
            return
        try:
            handle = self._open()
            handle.write(json.dumps([round(line.time, 3), line.text]) + "\n")
            handle.flush()
            if handle.tell() >= self._cap:
                self.close()
                os.replace(self.path, self.previous)
        except OSError as exc:
            self._broken = True
            self.close()
            logger.warning("can't write the app log %s (%s): this app's new lines are kept "
                           "in memory only until the server restarts", self.path, exc)

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()
            except OSError:
                pass

    def _open(self) -> IO[str]:
        if self._handle is None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            cut_short = _ends_mid_line(self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._handle = os.fdopen(fd, "a", encoding="utf-8")
            if cut_short:  # a crash mid-write: end that line, or the next is lost with it
                self._handle.write("\n")
        return self._handle


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except OSError:  # no file, or an empty one
        return False


def _parse(raw: str) -> LogLine | None:
    try:
        when, text = json.loads(raw)
        return LogLine(float(when), str(text))
    except (ValueError, TypeError):  # a line cut short by a crash mid-write
        return None
