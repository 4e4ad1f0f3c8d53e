"""Length-prefixed messages: a JSON header, optionally followed by one binary blob.

Used on every channel coldsnap owns: the container's control pipes and the
server's socket. A message on the wire is::

    u32 header_len | header (UTF-8 JSON object) | [u64 blob_len | blob]

The header's ``"blob"`` key says whether a blob follows. User values (arguments,
results, exceptions) travel only as blobs, so the server routes them without
ever unpickling them.

One parser, ``FrameDecoder``, reads both ways: ``read_message`` feeds it exactly
the bytes it asks for from a blocking stream; the server's ``ControlChannel``
feeds it whatever a non-blocking read returned. Example::

    decoder = FrameDecoder(max_blob=1 << 20)
    for header, blob in decoder.feed(os.read(fd, 65536)):
        ...
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any, BinaryIO

MAX_HEADER = 16 * 1024 * 1024
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

# A decoded message: the header (without its "blob" key) and the blob, if any.
Message = tuple[dict[str, Any], bytes | None]
# What the decoder does with the next complete part (a length, a header, a blob).
_Part = Callable[[bytes], Message | None]


class ChannelClosed(EOFError):
    """The peer closed the channel (cleanly, or mid-message)."""


class ProtocolError(ValueError):
    """The bytes on the channel are not a coldsnap message."""


class PayloadTooLarge(ProtocolError):
    """A header over ``MAX_HEADER`` or a blob over the reader's limit; refused before
    it is read, so the sender's bytes are still on the channel (hang up after it)."""

    def __init__(self, message: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class FrameDecoder:
    """Turns bytes, fed in chunks of any size, into messages.

    ``max_blob`` refuses larger blobs (``PayloadTooLarge``) as soon as their length
    arrives; ``limit_name`` names what sets it (a setting), for the message.
    ``on_header`` sees each header as soon as it is parsed, before its blob is read,
    so a server refuses a request (a wrong token) without reading its payload: what
    it raises propagates from ``feed``. After a ProtocolError, or a refusal by
    ``on_header``, the stream can't be resynchronised: drop the channel.
    """

    def __init__(self, max_blob: int | None = None, limit_name: str | None = None,
                 on_header: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._max_blob = max_blob
        self._limit_name = limit_name
        self._on_header = on_header
        self._buf = bytearray()  # the part being received, while incomplete
        self._need = _U32.size  # the length of that part
        self._part: _Part = self._header_length
        self._header: dict[str, Any] = {}  # of the message being received

    @property
    def wanted(self) -> int:
        """How many more bytes complete the part being received (at least 1): a blocking
        reader reads exactly these, so it never reads past a message."""
        return self._need - len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        """The messages ``data`` completes, in order; keeps what is left for the next feed."""
        messages: list[Message] = []
        view = memoryview(data)
        offset = 0
        while True:
            if self._buf or len(view) - offset < self._need:
                take = min(self._need - len(self._buf), len(view) - offset)
                self._buf += view[offset:offset + take]
                offset += take
                if len(self._buf) < self._need:
                    return messages
                part = bytes(self._buf)
                self._buf.clear()
            elif offset == 0 and len(data) == self._need and isinstance(data, bytes):
                part, offset = data, len(data)  # a whole part: no copy (a large blob)
            else:
                part = bytes(view[offset:offset + self._need])
                offset += self._need
            message = self._part(part)
            if message is not None:
                messages.append(message)
            if offset == len(view) and self._need:
                return messages

    def _expect(self, size: int, part: _Part) -> None:
        self._need, self._part = size, part

    def _header_length(self, data: bytes) -> None:
        (size,) = _U32.unpack(data)
        if size > MAX_HEADER:
            raise PayloadTooLarge(
                f"a header of {size} bytes exceeds the {MAX_HEADER}-byte limit", size, MAX_HEADER)
        self._expect(size, self._header_json)

    def _header_json(self, data: bytes) -> Message | None:
        try:
            header = json.loads(data)
        except ValueError as exc:  # UnicodeDecodeError too
            raise ProtocolError(f"a header is not JSON: {exc}") from None
        if not isinstance(header, dict):
            raise ProtocolError(f"a header is a JSON {type(header).__name__}, not an object")
        has_blob = bool(header.pop("blob", False))
        if self._on_header is not None:
            self._on_header(header)
        if not has_blob:
            self._expect(_U32.size, self._header_length)
            return header, None
        self._header = header
        self._expect(_U64.size, self._blob_length)
        return None

    def _blob_length(self, data: bytes) -> None:
        (size,) = _U64.unpack(data)
        if self._max_blob is not None and size > self._max_blob:
            setting = f" ({self._limit_name})" if self._limit_name else ""
            raise PayloadTooLarge(f"a payload of {size} bytes exceeds the limit of "
                                  f"{self._max_blob} bytes{setting}", size, self._max_blob)
        self._expect(size, self._blob)

    def _blob(self, data: bytes) -> Message:
        header, self._header = self._header, {}
        self._expect(_U32.size, self._header_length)
        return header, data


def write_message(stream: BinaryIO, header: dict[str, Any], blob: bytes | None = None) -> None:
    """Write one message; ``stream`` must be buffered (it writes whole buffers)."""
    data = json.dumps({**header, "blob": blob is not None}).encode()
    stream.write(_U32.pack(len(data)) + data)
    if blob is not None:
        stream.write(_U64.pack(len(blob)))
        stream.write(blob)
    stream.flush()


def read_message(stream: BinaryIO, max_blob: int | None = None,
                 on_header: Callable[[dict[str, Any]], None] | None = None) -> Message:
    """Read one message, and not a byte more; raises ChannelClosed at EOF, PayloadTooLarge
    for a blob over ``max_blob`` (before reading it) and ProtocolError on garbage.
    ``on_header`` checks the header before the blob is read (``FrameDecoder``)."""
    decoder = FrameDecoder(max_blob, on_header=on_header)
    while True:
        messages = decoder.feed(_read_exact(stream, decoder.wanted))
        if messages:
            return messages[0]


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks = []
    remaining = n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise ChannelClosed(f"channel closed with {remaining} of {n} bytes unread")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
