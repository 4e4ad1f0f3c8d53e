"""The contract of Dicts and Queues: the ``object`` op's kinds and actions, and how
several pickled values travel in one blob.

A request is ``{"op": "object", "kind": "dict"|"queue", "name": ..., "action": ...}``
plus the action's fields; its blob, and its reply's, is ``pack``ed byte strings
(pickled keys and values: the server stores them and never unpickles them).
"""

from __future__ import annotations

import struct

DICT, QUEUE = "dict", "queue"
KINDS = (DICT, QUEUE)
# The longest one request waits for a queue item; a client that wants to wait longer
# asks again, so no server thread is held for long.
MAX_BLOCK_S = 10.0
# Modal's default: a partition is cleared this long after its last put.
PARTITION_TTL_S = 24 * 3600.0
MAX_PARTITION_KEY_BYTES = 64  # Modal's limit
_LENGTH = struct.Struct(">Q")


def pack(items: list[bytes]) -> bytes:
    """Byte strings in one blob: each as its 8-byte length, then its bytes."""
    return b"".join(_LENGTH.pack(len(item)) + item for item in items)


def unpack(blob: bytes | None) -> list[bytes]:
    """``pack``'s inverse; ValueError for a blob that is not one."""
    items, at = [], 0
    data = blob or b""
    while at < len(data):
        if at + _LENGTH.size > len(data):
            raise ValueError("a packed blob ends inside a length")
        (size,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if at + size > len(data):
            raise ValueError("a packed blob ends inside an item")
        items.append(bytes(data[at:at + size]))
        at += size
    return items


def title(kind: str) -> str:
    """How users write the kind: ``Dict``, ``Queue``."""
    return kind.capitalize()
