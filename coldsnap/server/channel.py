"""The server's ends of a container's pipes: framed control messages and the log pump.

Control messages are read with ``poll`` on the raw fd, not by a reader
thread, so a call can wait with a deadline and nothing is left blocked in a
read when the engine takes the container away for a checkpoint.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, BinaryIO

from coldsnap.wire.framing import ChannelClosed, FrameDecoder, Message, write_message

_MAX_LINE = 64 * 1024


class ControlChannel:
    """Messages to and from one container.

    The container is untrusted: a header over ``MAX_HEADER`` or a blob over
    ``max_blob`` raise PayloadTooLarge, a header that is not a JSON object
    ProtocolError (the stream can't be resynchronised; the caller drops the
    container).
    """

    def __init__(self, ctrl_in: BinaryIO, ctrl_out: BinaryIO,
                 max_blob: int | None = None) -> None:
        self._out = ctrl_in
        self._send_lock = threading.Lock()  # calls, and replies to the container's requests
        self._fd = ctrl_out.fileno()
        os.set_blocking(self._fd, False)
        self._decoder = FrameDecoder(max_blob, limit_name="COLDSNAP_MAX_PAYLOAD_BYTES")
        self._received: deque[Message] = deque()  # decoded, not yet taken by recv

    def send(self, header: dict[str, Any], blob: bytes | None = None) -> None:
        """Raises BrokenPipeError (or another OSError) when the container is gone."""
        with self._send_lock:
            write_message(self._out, header, blob)

    def recv(self, timeout: float | None) -> Message:
        """The next message; TimeoutError after ``timeout`` s, ChannelClosed at EOF."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._received:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError
            if not _wait_readable([self._fd], remaining):
                continue
            try:
                data = os.read(self._fd, 1 << 20)
            except BlockingIOError:
                continue
            if not data:
                raise ChannelClosed("the container closed its control pipe")
            self._received.extend(self._decoder.feed(data))
        return self._received.popleft()


class LogPump:
    """Reads a container's log pipe line by line on a thread; ``sync`` drains it now."""

    def __init__(self, logs: BinaryIO, on_line: Callable[[str], None],
                 on_eof: Callable[[], None], name: str) -> None:
        self._fd = logs.fileno()
        os.set_blocking(self._fd, False)
        self._on_line = on_line
        self._on_eof = on_eof
        self._partial = b""
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._stopped = False
        self._eof = False
        self._thread = threading.Thread(target=self._run, name=f"logs-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            readable = _wait_readable([self._fd, self._wake_r], None)
            if self._wake_r in readable:
                break
            with self._lock:
                self._read_available()
                if self._eof:
                    break
        if self._eof:
            self._on_eof()

    def _read_available(self) -> None:
        """Read until the pipe is empty; the caller holds the lock."""
        while not self._eof and not self._stopped:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._eof = True
                self._emit_partial()
                return
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > _MAX_LINE:
            lines.append(self._partial)
            self._partial = b""
        for line in lines:
            self._on_line(line.decode("utf-8", "replace").rstrip("\r"))

    def _emit_partial(self) -> None:
        if self._partial:
            self._on_line(self._partial.decode("utf-8", "replace"))
            self._partial = b""

    def sync(self) -> None:
        """Deliver every line already written to the pipe (a result came; its logs first)."""
        with self._lock:
            self._read_available()

    def stop(self) -> None:
        """Drain, then stop reading: the pipe goes to the engine (checkpoint) or is closed."""
        self.sync()
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._emit_partial()
        os.write(self._wake_w, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)


def _wait_readable(fds: list[int], timeout: float | None) -> list[int]:
    """The fds of ``fds`` ready to read (or at EOF) within ``timeout`` seconds.

    poll, not select: a server with many containers holds fds past select's 1024.
    """
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    millis = None if timeout is None else max(0, int(timeout * 1000))
    return [fd for fd, _ in poller.poll(millis)]
