"""A sandbox process's streams and exit, on the client: Modal's ``ContainerProcess``,
``StreamReader`` and ``StreamWriter``.

Output is read from the server by offset (wire/sandbox.py), so lines come in the
order the process wrote them and a reader never sees a byte twice. Example::

    p = sb.exec("bash", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done")
    for line in p.stdout:
        print(line, end="")
    assert p.wait() == 0
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from coldsnap._aio import with_aio
from coldsnap.wire import sandbox as wire
from coldsnap.wire.errors import InvalidError

if TYPE_CHECKING:
    from coldsnap.client import Client

T = TypeVar("T", str, bytes)
# How long one read or wait request waits on the server before the client asks again.
POLL_S = 10.0


class _ProcessRef:
    """Which process of which sandbox, and the client that reaches it."""

    def __init__(self, client: Client, sandbox_id: str, process_id: str) -> None:
        self.client = client
        self.sandbox_id = sandbox_id
        self.process_id = process_id

    def request(self, op: str, blob: bytes | None = None, **fields: Any
                ) -> tuple[dict[str, Any], bytes | None]:
        return self.client.request(op, blob, sandbox_id=self.sandbox_id,
                                   process_id=self.process_id, **fields)


class StreamReader(Generic[T]):
    """A process's stdout or stderr: ``read()`` all of it, or iterate over its lines as
    they come (``async for`` too)."""

    def __init__(self, ref: _ProcessRef, stream: str, text: bool) -> None:
        self._ref = ref
        self._stream = stream
        self._text = text
        self._offset = 0
        self._eof = False
        self._pending = b""  # read from the server, not handed out yet (part of a line)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def _chunks(self) -> Iterator[bytes]:
        """What the process writes, as it comes, until the stream ends."""
        while not self._eof:
            header, blob = self._ref.request(wire.SANDBOX_READ, stream=self._stream,
                                             offset=self._offset, wait=POLL_S)
            data = blob or b""
            self._offset += len(data)
            self._eof = bool(header.get("eof"))
            if data:
                yield data

    def _out(self, data: bytes, final: bool = False) -> T:
        if self._text:
            return self._decoder.decode(data, final)  # type: ignore[return-value]
        return data  # type: ignore[return-value]

    @with_aio
    def read(self) -> T:
        """Everything from here to the end of the stream (waits for the process to close it)."""
        data, self._pending = self._pending + b"".join(self._chunks()), b""
        return self._out(data, final=True)

    def __iter__(self) -> Iterator[T]:
        """Its lines as they come; a line left unread by an abandoned iterator (as
        ``next(iter(p.stdout))`` leaves one) is the next iterator's first."""
        while True:
            line, newline, rest = self._pending.partition(b"\n")
            if newline:
                self._pending = rest
                yield self._out(line + newline)
                continue
            chunk = next(self._chunks(), None)
            if chunk is None:
                break
            self._pending += chunk
        if self._pending:
            data, self._pending = self._pending, b""
            yield self._out(data, final=True)

    async def __aiter__(self) -> AsyncIterator[T]:
        import asyncio

        lines = iter(self)
        done = object()
        while True:
            line = await asyncio.to_thread(next, lines, done)
            if line is done:
                return
            yield line  # type: ignore[misc]


class StreamWriter:
    """A process's stdin: ``write()`` bytes (or str), ``write_eof()`` to close it, and
    ``drain()`` (a no-op here: each write reaches the server before it returns)."""

    def __init__(self, ref: _ProcessRef) -> None:
        self._ref = ref
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview | str) -> None:
        if self._closed:
            raise ValueError("write() after write_eof(): this stdin is closed")
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"stdin.write() takes bytes or str, not {type(data).__name__}")
        self._ref.request(wire.SANDBOX_WRITE, bytes(data))

    def write_eof(self) -> None:
        if not self._closed:
            self._closed = True
            self._ref.request(wire.SANDBOX_WRITE, None, eof=True)

    @with_aio
    def drain(self) -> None:
        """Writes are sent as they are made: nothing is left to flush."""


class ContainerProcess(Generic[T]):
    """A process ``Sandbox.exec()`` started: its streams, ``wait()``, ``poll()`` and
    ``returncode``."""

    def __init__(self, client: Client, sandbox_id: str, process_id: str,
                 text: bool = True) -> None:
        ref = _ProcessRef(client, sandbox_id, process_id)
        self._ref = ref
        self.process_id = process_id
        self.stdout: StreamReader[T] = StreamReader(ref, wire.STDOUT, text)
        self.stderr: StreamReader[T] = StreamReader(ref, wire.STDERR, text)
        self.stdin = StreamWriter(ref)
        self._returncode: int | None = None

    @property
    def returncode(self) -> int | None:
        """The exit code once ``wait()`` or ``poll()`` saw the process end, else None."""
        return self._returncode

    @with_aio
    def poll(self) -> int | None:
        """The exit code if the process has ended, else None (does not wait)."""
        return self._ask(0.0)

    @with_aio
    def wait(self) -> int:
        """Wait for the process to end; its exit code."""
        while True:
            code = self._ask(POLL_S)
            if code is not None:
                return code

    def _ask(self, wait_s: float) -> int | None:
        if self._returncode is None:
            header, _ = self._ref.request(wire.SANDBOX_WAIT, timeout=wait_s)
            self._returncode = header.get("returncode")
        return self._returncode

    def __repr__(self) -> str:
        return f"ContainerProcess({self._ref.sandbox_id}/{self.process_id})"


def check_exec_args(args: tuple[Any, ...], pty: bool, bufsize: int) -> list[str]:
    """``exec``'s argv as strings; what Modal accepts that coldsnap can't, refused clearly."""
    if not args:
        raise InvalidError("Sandbox.exec() needs a command, e.g. sb.exec('echo', 'hi')")
    bad = [a for a in args if not isinstance(a, str)]
    if bad:
        raise InvalidError(f"Sandbox.exec() takes the command's words as str; got {bad[0]!r} "
                           f"({type(bad[0]).__name__}). Pass str(...) for numbers and paths.")
    if pty:
        raise InvalidError("Sandbox.exec(pty=True) is not supported by coldsnap yet: the "
                           "process gets pipes, not a terminal. Leave pty out.")
    if bufsize not in (-1, 1):
        raise InvalidError(f"Sandbox.exec(bufsize={bufsize}): use -1 (chunks) or 1 (lines)")
    return list(args)
