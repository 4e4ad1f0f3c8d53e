"""Content-defined chunks: cut (FastCDC), named (BLAKE3) and stored compressed (zstd).

Cut points depend on the bytes around them, not on offsets, so a change in one
place of a file (a page of a CRIU image, a file of the snapshot's layer) changes
the chunks around it and leaves the others, and their names, as they were: the
store keeps each chunk once across versions and functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# FastCDC's average chunk size; chunks are 1/4 to 4 times it. Small enough that a
# one-line change of an app touches a small part of its snapshot, large enough that
# a 300 MB snapshot is a few thousand objects.
AVERAGE_SIZE = 16 * 1024
ZSTD_LEVEL = 3  # fast, and pages of a heap compress well even so
# A snapshot's plain chunks: fetched far more often than written, and frames of a
# higher level decompress faster. The embedder's pages (344 MB) measured: level 3
# 78.5 MB, compressed in 0.8 s, decompressed in 298 ms; level 9 73.9 MB, 4.1 s,
# 231 ms (level 12: 73.0 MB, 13 s, 228 ms). Image layers keep ZSTD_LEVEL.
SNAPSHOT_LEVEL = 9


class CorruptChunk(Exception):
    """A chunk's bytes do not match the hash that names it."""

    def __init__(self, digest: str, problem: str) -> None:
        super().__init__(f"chunk {digest} {problem}")
        self.digest = digest
        self.pack: str | None = None  # the pack it was read from, once known


@dataclasses.dataclass(frozen=True)
class Piece:
    """A chunk of a file being stored: its hash, where it lies and its bytes."""

    digest: str
    offset: int
    data: bytes


def chunk_digest(data: bytes | memoryview) -> str:
    import blake3

    return blake3.blake3(data, max_threads=1).hexdigest()


def split_file(path: Path) -> Iterator[Piece]:
    """``path``'s chunks, in order (an empty file has none)."""
    from pyfastcdc import FastCDC

    if path.stat().st_size == 0:
        return
    for chunk in FastCDC(AVERAGE_SIZE).cut_file(str(path)):
        data = bytes(chunk.data)
        yield Piece(chunk_digest(data), chunk.offset, data)


def compress(data: bytes, level: int = ZSTD_LEVEL) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=level).compress(data)


def decompress(blob: bytes, digest: str, size: int, dict_data: Any = None,
               what: str = "") -> bytes:
    """The chunk's bytes from its stored form (``dict_data``: the zstd dictionary a delta
    refers to, deltas.py); CorruptChunk unless they hash to ``digest``. ``what`` names
    the form in the error ("a delta")."""
    import zstandard

    decompressor = zstandard.ZstdDecompressor(
        **({"dict_data": dict_data} if dict_data is not None else {}))
    try:
        data = decompressor.decompress(blob, max_output_size=size)
    except zstandard.ZstdError as exc:
        form = f"is {what} that " if what else ""
        raise CorruptChunk(digest, f"{form}does not decompress ({exc})") from None
    if len(data) != size or chunk_digest(data) != digest:
        rebuilt = f" once rebuilt from its {what.split()[-1]}" if what else ""
        raise CorruptChunk(digest, f"holds other bytes than its hash names{rebuilt} "
                           f"({len(data)} bytes, {size} expected)")
    return data
