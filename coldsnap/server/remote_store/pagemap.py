"""Where a page of one snapshot lies in an older snapshot of the same function.

CRIU writes a process's memory pages back to back into ``pages-N.img``; its
``pagemap-N.img`` says which virtual addresses they belong to. Two versions of
a function laid out the same way (layout.py) hold their pages at the same
addresses, but a few more or fewer pages in one mapping shift every later page
of the file: the same place in memory is then another offset of the file. A
delta chunk (deltas.py) is taken against the old page at the same address.

The image format is CRIU's: an 8-byte magic, then entries, each a 32-bit
length and a protobuf message; the first a ``pagemap_head`` (field 1: the
pages file's id), then one ``pagemap_entry`` per run of pages (field 1:
vaddr, 2: pages (older CRIU), 4: flags, 5: pages).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

PAGE = 4096
_PE_PARENT, _PE_PRESENT = 1, 4  # a page in the parent's images; a page in pages-N.img
OffsetMap = Callable[[str, int], "int | None"]  # file name, offset: the old file's offset


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _fields(message: bytes) -> dict[int, int]:
    """A protobuf message's varint fields (all a pagemap holds)."""
    fields, at = {}, 0
    while at < len(message):
        key, at = _varint(message, at)
        if key & 7 != 0:
            raise ValueError(f"pagemap field {key >> 3} is not a varint")
        fields[key >> 3], at = _varint(message, at)
    return fields


def read_pagemap(path: Path) -> tuple[str, list[int]]:
    """The pages file of ``path`` and the virtual address of each of its pages, in
    order. ValueError (or OSError) when it is not a pagemap this reads."""
    data, at, head = path.read_bytes(), 8, None
    addresses: list[int] = []
    while at < len(data):
        (length,) = struct.unpack_from("<I", data, at)
        fields = _fields(data[at + 4:at + 4 + length])
        at += 4 + length
        if head is None:
            head = fields.get(1, 0)
            continue
        pages = fields.get(5, fields.get(2, 0))
        flags = fields.get(4, 0)
        if flags & _PE_PRESENT and not flags & _PE_PARENT:
            addresses += range(fields[1], fields[1] + pages * PAGE, PAGE)
    if head is None:
        raise ValueError(f"{path} holds no pagemap")
    return f"pages-{head}.img", addresses


def offset_map(old_images: Path, new_images: Path) -> OffsetMap:
    """For a file of the new snapshot and an offset in it, the offset of the same place
    in the old one's file: for pages files the old page at the same address (None if
    the old process had none there), for other files the same offset."""
    moved: dict[str, tuple[list[int], dict[int, int]]] = {}
    for new_map in new_images.glob("pagemap-*.img"):
        try:
            name, new_pages = read_pagemap(new_map)
            old_name, old_pages = read_pagemap(old_images / new_map.name)
        except (OSError, ValueError, IndexError, struct.error):
            continue  # unknown: offsets as they are
        if old_name == name:
            moved[name] = (new_pages, {vaddr: i * PAGE for i, vaddr in enumerate(old_pages)})

    def where(name: str, offset: int) -> int | None:
        if name not in moved:
            return offset
        new_pages, old_offsets = moved[name]
        page = offset // PAGE
        if page >= len(new_pages) or new_pages[page] not in old_offsets:
            return None
        return old_offsets[new_pages[page]] + offset % PAGE

    return where
