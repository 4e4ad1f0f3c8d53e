"""The runtime's end of the control pipes: messages in from the server, out to it."""

from __future__ import annotations

import contextvars
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from coldsnap.wire import control, framing
from coldsnap.wire.container import CTRL_IN_ENV, CTRL_OUT_ENV


class Channel:
    """Messages to and from the server, safe to use from several threads.

    The serve loop ``receive``s calls; user code in a call may meanwhile send
    ``request``s of its own (a ``.remote()`` of another function) and wait for
    their ``reply``. Whichever thread waits reads the pipe for all of them and
    sorts what it reads: replies to their requests, the rest to ``receive``.
    """

    def __init__(self, reader: BinaryIO, writer: BinaryIO) -> None:
        self.reader = reader
        self.writer = writer
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._reading = False  # a thread is in read_message
        self._closed: framing.ChannelClosed | None = None
        self._replies: dict[str, tuple[dict[str, Any], bytes | None]] = {}
        self._messages: deque[tuple[dict[str, Any], bytes | None]] = deque()
        # Set while the runtime serves calls: the server answers requests while it runs
        # one (a request from between calls waits for the next call).
        self.serving = False

    # Per input (a context variable: concurrent inputs each see their own, on their
    # thread or asyncio task). The server's payload limit, from the input's call: a
    # bigger request is refused here.
    @property
    def max_payload(self) -> int | None:
        return _max_payload.get()

    @max_payload.setter
    def max_payload(self, value: int | None) -> None:
        _max_payload.set(value)

    # When the running input times out (time.monotonic()): a call it makes to
    # another function waits no longer, and is dropped if it has not started.
    @property
    def deadline(self) -> float | None:
        return _deadline.get()

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        _deadline.set(value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Channel:
        try:
            in_fd, out_fd = int(environ[CTRL_IN_ENV]), int(environ[CTRL_OUT_ENV])
        except (KeyError, ValueError) as exc:
            raise SystemExit(
                f"coldsnap runtime: {CTRL_IN_ENV} and {CTRL_OUT_ENV} must name the control "
                f"pipes' file descriptors ({exc!r}). This module is started by the coldsnap "
                "server, not by hand."
            ) from exc
        # User code may start subprocesses: they must not hold our pipes open.
        for fd in (in_fd, out_fd):
            os.set_inheritable(fd, False)
        return cls(os.fdopen(in_fd, "rb"), os.fdopen(out_fd, "wb"))

    def send(self, header: dict[str, Any], blob: bytes | None = None) -> None:
        """Send one message; ``header`` names its type (``wire/control.py``)."""
        with self._send_lock:
            framing.write_message(self.writer, header, blob)

    def receive(self) -> tuple[dict[str, Any], bytes | None]:
        """The next message that is no reply; raises framing.ChannelClosed when the
        server hung up."""
        return self._wait(lambda: self._messages.popleft() if self._messages else None)

    def request(self, header: dict[str, Any], blob: bytes | None
                ) -> tuple[dict[str, Any], bytes | None]:
        """Send an API request (docs/server.md) to the server; its reply (header, blob)."""
        request_id = uuid.uuid4().hex
        self.send(control.Request(request_id, header).to_header(), blob)
        reply, reply_blob = self._wait(lambda: self._replies.pop(request_id, None))
        return control.Reply.from_header(reply).header, reply_blob

    def _wait(self, take: Callable[[], tuple[dict[str, Any], bytes | None] | None]
              ) -> tuple[dict[str, Any], bytes | None]:
        """Until ``take()`` gives a message: wait while another thread reads the pipe,
        else read one message ourselves and sort it."""
        while True:
            reading = False
            try:
                with self._cond:
                    while True:
                        message = take()
                        if message is not None:
                            return message
                        if self._closed is not None:
                            raise self._closed
                        if not self._reading:
                            self._reading = reading = True
                            break
                        self._cond.wait()
                message = framing.read_message(self.reader)  # the lock is free meanwhile
                with self._cond:
                    self._sort(message)  # before another reader can read the next one
            except (framing.ChannelClosed, framing.ProtocolError, OSError) as exc:
                closed = exc if isinstance(exc, framing.ChannelClosed) else \
                    framing.ChannelClosed(f"the control pipe broke: {exc}")
                with self._cond:
                    self._closed = closed  # every waiter raises it; the stream can't resync
                raise closed from None
            finally:
                if reading:  # also when a signal (SIGTERM) interrupts the read
                    with self._cond:
                        self._reading = False
                        self._cond.notify_all()

    def _sort(self, message: tuple[dict[str, Any], bytes | None]) -> None:
        header = message[0]
        if header.get(control.TYPE) == control.REPLY:
            self._replies[control.Reply.from_header(header).request_id] = message
        else:
            self._messages.append(message)


_max_payload: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "coldsnap_max_payload", default=None)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "coldsnap_deadline", default=None)
_current: Channel | None = None


def set_current(channel: Channel) -> None:
    """The runtime's channel, for ``coldsnap.client`` inside this container."""
    global _current
    _current = channel


def current() -> Channel | None:
    """The runtime's channel in a container's runtime process, else None."""
    return _current


def parent_input() -> dict[str, str] | None:
    """The input a call made now comes from (``_runtime/inputs.py``), as the call
    graph's ``parent`` field has it; None outside any input."""
    from coldsnap._runtime.inputs import parent_input as find

    parent = find()
    return parent.to_dict() if parent is not None else None
