"""The lines a concurrent input prints, tagged with its call id (``wire/log_tags.py``)
so its caller gets them and no other; lines printed outside an input (a thread the
input started, a subprocess writing to the fd) stay untagged and reach every caller
whose input runs then."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from coldsnap.current import CALL_ID as _call_id  # also current_function_call_id()
from coldsnap.wire.log_tags import tag_line


class TaggedStream:
    """``sys.stdout``/``sys.stderr`` for a concurrent target: whole lines, each tagged
    with the id of the input that printed it (its thread or asyncio task)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._partial: dict[str, str] = {}  # call id -> its unfinished line

    def write(self, text: str) -> int:
        call_id = _call_id.get()
        if call_id is None:
            return self._stream.write(text)
        with self._lock:
            *lines, rest = (self._partial.pop(call_id, "") + text).split("\n")
            for line in lines:
                self._stream.write(tag_line(call_id, line) + "\n")
            if rest:
                self._partial[call_id] = rest
        return len(text)

    def end_input(self, call_id: str) -> None:
        """The input ended: its unfinished line goes out as a line."""
        with self._lock:
            rest = self._partial.pop(call_id, None)
            if rest is not None:
                self._stream.write(tag_line(call_id, rest) + "\n")

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, isatty, buffer...
        return getattr(self._stream, name)


def install() -> None:
    """Tag what inputs print from now on (once per process)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, TaggedStream):
            setattr(sys, name, TaggedStream(stream))


def enter(call_id: str) -> None:
    """What this thread or task prints from now on belongs to ``call_id``."""
    _call_id.set(call_id)


def leave(call_id: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, TaggedStream):
            stream.end_input(call_id)
    _call_id.set(None)
