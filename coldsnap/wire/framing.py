"""Length-prefixed messages: a JSON header, optionally followed by one binary blob.

Used on every channel coldsnap owns: the container's control pipes and the
server's socket. A message on the wire is::

    u32 header_len | header (UTF-8 JSON object) | [u64 blob_len | blob]

The header's ``"blob"`` key says whether a blob follows. User values (arguments,
results, exceptions) travel only as blobs, so the server routes them without
ever unpickling them.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

MAX_HEADER = 16 * 1024 * 1024
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class ChannelClosed(EOFError):
    """The peer closed the channel (cleanly, or mid-message)."""


class ProtocolError(ValueError):
    """The bytes on the channel are not a coldsnap message."""


def write_message(stream: BinaryIO, header: dict[str, Any], blob: bytes | None = None) -> None:
    """Write one message; ``stream`` must be buffered (it writes whole buffers)."""
    data = json.dumps({**header, "blob": blob is not None}).encode()
    stream.write(_U32.pack(len(data)) + data)
    if blob is not None:
        stream.write(_U64.pack(len(blob)))
        stream.write(blob)
    stream.flush()


def read_message(
    stream: BinaryIO, max_blob: int | None = None
) -> tuple[dict[str, Any], bytes | None]:
    """Read one message; raises ChannelClosed at EOF and ProtocolError on garbage."""
    (size,) = _U32.unpack(_read_exact(stream, 4))
    if size > MAX_HEADER:
        raise ProtocolError(f"header of {size} bytes exceeds the {MAX_HEADER}-byte limit")
    try:
        header = json.loads(_read_exact(stream, size))
    except ValueError as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    blob = None
    if header.pop("blob", False):
        (blob_len,) = _U64.unpack(_read_exact(stream, 8))
        if max_blob is not None and blob_len > max_blob:
            raise ProtocolError(
                f"payload of {blob_len} bytes exceeds the limit of {max_blob} bytes"
            )
        blob = _read_exact(stream, blob_len)
    return header, blob


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
