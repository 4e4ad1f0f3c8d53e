"""Delta chunks: a chunk of a new version stored as its difference to the old one.

Two versions of a function, laid out the same way (layout.py), hold nearly the
same memory, yet most of its chunks differ: pointers in the new version's pages
are shifted by a few bytes, so their bytes, and their hashes, are new. Such a
chunk compresses to a fraction of its size with the old version's bytes at the
same place (the same file, the same memory address: pagemap.py) as zstd's
dictionary. An upload (``DeltaBase``) stores a new chunk that way when its older
version of the function is on this host and in the store and that takes much
less room; the chunk's name stays the BLAKE3 of its plain bytes.

A fetch (``Rebuilder``) gets a delta chunk's bases (from the chunk cache, another
version in the local store (local_chunks.py), else the store: then they count in
the fetch's bytes), then rebuilds it and checks it against its hash like any
chunk: a damaged delta or base is a corrupt chunk.
Chains stay short: a base is at most ``MAX_CHAIN - 1`` deltas deep.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from coldsnap.server.remote_store.chunks import (
    CorruptChunk,
    Piece,
    compress,
    decompress,
    split_file,
)
from coldsnap.server.remote_store.local_chunks import LocalChunk, other_version
from coldsnap.server.remote_store.manifest import (
    MAX_CHAIN,
    ChunkRef,
    Delta,
    Location,
    chain_lengths,
)
from coldsnap.server.remote_store.packs import Encoder, PackIndex
from coldsnap.server.remote_store.pagemap import offset_map

# The old bytes a chunk is compared with: its own place, and this much either side.
# A one-line change moves the embedder's heap objects by tens of KiB (its threads
# make the layout vary from run to run too), so a wide window finds more of a
# chunk's bytes. Measured on the embedder's pages (docs/store.md): 16 KiB either
# side and zstd level 3 stored 29 MB of a one-line change, 64 KiB and level 9 23 MB,
# at 0.5 ms a chunk (12 s at level 12 for 1% less).
WINDOW = 64 * 1024
ZSTD_LEVEL = 9
RECENT_BASES = 256  # decompressed base chunks a fetch keeps (~4 MiB)
GAIN = 0.75  # a delta is stored when it is at most this much of the chunk compressed alone
logger = logging.getLogger(__name__)
_Read = tuple[str, Location, bytes]  # a chunk read from the store: digest, where, bytes


def _zstd_dict(base: bytes) -> Any:
    import zstandard

    return zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def encode(data: bytes, base: bytes) -> bytes:
    """``data`` compressed with ``base`` as the dictionary it refers to."""
    import zstandard

    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=_zstd_dict(base)).compress(data)


def decode(blob: bytes, base: bytes, digest: str, size: int) -> bytes:
    """The chunk that ``encode`` made ``blob`` of; CorruptChunk unless it hashes to
    ``digest``."""
    return decompress(blob, digest, size, _zstd_dict(base), "a delta")


def previous_snapshot(snapshot: Path) -> Path | None:
    """The newest snapshot of the same app and function made before ``snapshot`` in
    the same local store dir (its host key's), or None."""
    try:
        meta = json.loads((snapshot / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return other_version(snapshot.parent, meta, snapshot.name,
                         before=float(meta.get("created_at", 0)))


class DeltaBase:
    """An older snapshot of the same function on this host, which the store holds: new
    chunks of an upload are stored as deltas against its bytes where that pays."""

    def __init__(self, old: Path, new: Path, index: PackIndex) -> None:
        self.images = old / "images"
        self.index = index
        self._where = offset_map(self.images, new / "images")
        self._chunks: dict[str, tuple[list[int], list[ChunkRef]]] = {}
        self.stored = 0  # chunks stored as deltas
        self.gone = False  # no deltas (any more) against this snapshot
        try:
            self._depths = chain_lengths(index.deltas())
        except ValueError as exc:  # a damaged index: store plain chunks
            logger.warning("storing no deltas: the store's pack indexes are damaged: %s", exc)
            self._depths, self.gone = {}, True

    def encoder(self, name: str, piece: Piece) -> Encoder:
        """What PackWriter.add calls if the store lacks ``piece`` (of file ``name``)."""
        return lambda: self.encode(name, piece)

    def encode(self, name: str, piece: Piece) -> tuple[bytes, Delta] | None:
        """``piece`` as a delta against the old snapshot, or None where that does not pay
        (no old file, no old page at its place, bases the store lacks)."""
        if self.gone:
            return None
        try:
            return self._encode(name, piece)
        except OSError as exc:  # deleted meanwhile (rm, gc): the rest go plain
            logger.info("stopped storing deltas against %s: %s", self.images.parent, exc)
            self.gone = True
            return None

    def _encode(self, name: str, piece: Piece) -> tuple[bytes, Delta] | None:
        start = self._where(name, piece.offset)
        if start is None or not (self.images / name).is_file():
            return None
        found = self._bases(name, start - WINDOW, start + len(piece.data) + WINDOW)
        if found is None:
            return None
        refs, first = found
        with open(self.images / name, "rb") as old:
            base = os.pread(old.fileno(), sum(ref.size for ref in refs), first)
        lo, hi = max(0, start - WINDOW - first), start + len(piece.data) + WINDOW - first
        base = base[lo:hi]
        blob, plain = encode(piece.data, base), compress(piece.data)
        if len(blob) > GAIN * len(plain):
            return None
        self.stored += 1
        return blob, Delta(tuple(refs), lo, len(base))

    def _bases(self, name: str, lo: int, hi: int) -> tuple[list[ChunkRef], int] | None:
        """The old file's chunks that hold bytes ``lo`` to ``hi`` (clipped to it), and
        where the first starts: from the middle one outward, as long as the store holds
        each, shallow enough; None if it lacks the middle one."""
        offsets, refs = self._file_chunks(name)
        first = max(0, bisect.bisect_right(offsets, max(lo, 0)) - 1)
        last = bisect.bisect_left(offsets, hi)
        if first >= last:
            return None
        middle = max(first, bisect.bisect_right(offsets, (lo + hi) // 2) - 1)

        def usable(i: int) -> bool:
            return (self.index.get(refs[i].digest) is not None
                    and self._depths.get(refs[i].digest, 0) < MAX_CHAIN)

        if middle >= last or not usable(middle):
            return None
        start, end = middle, middle + 1
        while start > first and usable(start - 1):
            start -= 1
        while end < last and usable(end):
            end += 1
        return refs[start:end], offsets[start]

    def _file_chunks(self, name: str) -> tuple[list[int], list[ChunkRef]]:
        """The old file cut as its upload cut it: the same bytes give the same chunks."""
        if name not in self._chunks:
            pieces = [(p.offset, ChunkRef(p.digest, len(p.data)))
                      for p in split_file(self.images / name)]
            self._chunks[name] = ([o for o, _ in pieces], [r for _, r in pieces])
        return self._chunks[name]


class Rebuilder:
    """A fetch's side of delta chunks: which bases it needs, their bytes once fetched
    (kept compressed), and each chunk's bytes from what the store or cache gave."""

    def __init__(self, deltas: dict[str, Delta]) -> None:
        self.deltas = deltas
        self.bases = {ref.digest: ref.size for delta in deltas.values() for ref in delta.base}
        self._depths = chain_lengths(deltas)
        self._kept: dict[str, bytes | LocalChunk] = {}
        self._recent: dict[str, bytes] = {}  # decompressed bases, least recent first
        self._lock = threading.Lock()

    def keep_local(self, digest: str, where: LocalChunk) -> None:
        """Hold where a base lies in a local snapshot (read when a delta needs it)."""
        if digest in self.bases:
            with self._lock:
                self._kept[digest] = where

    def keep(self, digest: str, blob: bytes) -> None:
        """Hold a chunk's compressed plain bytes if a delta is built on it."""
        if digest in self.bases:
            with self._lock:
                self._kept[digest] = blob

    def chunk(self, digest: str, blob: bytes, size: int) -> bytes:
        """The chunk's bytes from what the store holds for it (plain or a delta whose
        bases were kept); CorruptChunk unless they hash to ``digest``."""
        delta = self.deltas.get(digest)
        if delta is None:
            data = decompress(blob, digest, size)
            self.keep(digest, blob)
            return data
        base = b"".join(self._base(ref, digest) for ref in delta.base)
        try:
            data = decode(blob, base[delta.skip:delta.skip + delta.length], digest, size)
        except CorruptChunk:
            self._check_local(delta)  # a local file changed: that, not the store's copy
            raise
        if digest in self.bases:  # a base of a deeper delta
            self.keep(digest, compress(data))
        return data

    def _base(self, ref: ChunkRef, delta: str) -> bytes:
        """A base chunk's bytes: neighbouring deltas share most of theirs, so the last
        ``RECENT_BASES`` decompressed are kept."""
        with self._lock:
            data = self._recent.pop(ref.digest, None)
            blob = self._kept.get(ref.digest)
        if data is None:
            if blob is None:  # its base failed to come: the delta can't be rebuilt
                raise CorruptChunk(delta, "is a delta whose base chunks did not arrive")
            # A local base is not hashed here (the embedder's 14,000: ~0.3 s of CPU): a
            # wrong one makes the rebuilt chunk wrong, and then it is checked.
            data = (blob.read(ref.digest, check=False) if isinstance(blob, LocalChunk)
                    else decompress(blob, ref.digest, ref.size))
        with self._lock:
            self._recent[ref.digest] = data  # the most recent last
            while len(self._recent) > RECENT_BASES:
                del self._recent[next(iter(self._recent))]
        return data

    def _check_local(self, delta: Delta) -> None:
        """OSError if a base of ``delta`` read from a local snapshot no longer hashes to
        its name (forgotten, so that a retry reads the store's)."""
        for ref in delta.base:
            with self._lock:
                where = self._kept.get(ref.digest)
            if isinstance(where, LocalChunk):
                try:
                    where.read(ref.digest)
                except OSError:
                    with self._lock:
                        self._recent.pop(ref.digest, None)
                        self._kept.pop(ref.digest, None)
                    raise

    def waves(self, deltas: list[_Read]) -> list[list[_Read]]:
        """Delta chunks read from the store, in the order they can be rebuilt: those
        against plain chunks first, then one level deeper each time."""
        by_depth: dict[int, list[_Read]] = {}
        for read in deltas:
            by_depth.setdefault(self._depths.get(read[0], 0), []).append(read)
        return [by_depth[depth] for depth in sorted(by_depth)]
