"""Packs: many chunks in one object, so that a snapshot is a few dozen requests.

Storing each chunk as its own object costs a request per chunk both ways
(measured: ~21,000 GETs and 24 s to fetch a 344 MB snapshot). An upload instead
writes the chunks the store lacks, compressed, back to back into pack objects of
about ``PACK_BYTES``, and beside each pack an index object naming its chunks and
where they lie. A manifest says for every chunk its pack, offset and length, so a
fetch reads runs of neighbouring chunks with one ranged GET each (``plan_spans``),
several at once. The indexes are what uploaders read to learn which chunks the
store holds; a pack found damaged loses its index, so its chunks are written anew.
A chunk stored as a delta (deltas.py) says so in its index entry, with its base.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from coldsnap.server.remote_store.bucket import Bucket
from coldsnap.server.remote_store.chunks import ZSTD_LEVEL, chunk_digest, compress
from coldsnap.server.remote_store.manifest import MAX_CHAIN, Delta, Location

PACK_BYTES = 8 * 1024 * 1024  # compressed chunks per pack object, about
RANGE_GAP = 256 * 1024  # chunks of a pack this close are read in one request, gap and all
RANGE_MOST = 4 * 1024 * 1024  # the longest read: long enough to be cheap, short enough to
# spread a snapshot over several requests at once
INDEX_FORMAT = 2  # 1: JSON, no delta chunks; 2: zstd-compressed JSON, delta chunks too
INDEX_READS = frozenset({1, 2})
# Stores a chunk as a delta when that pays: its stored bytes and how to rebuild it.
Encoder = Callable[[], "tuple[bytes, Delta] | None"]


def pack_name(data: bytes) -> str:
    return f"packs/{chunk_digest(data)}"


def index_name(pack: str) -> str:
    return f"{pack}.idx"


class PackIndex:
    """Which chunks the store holds and where: its packs' indexes, each read once."""

    def __init__(self) -> None:
        self._where: dict[str, Location] = {}
        self._deltas: dict[str, Delta] = {}
        self._read: set[str] = set()
        self._lock = threading.Lock()

    def refresh(self, bucket: Bucket) -> None:
        """Read the indexes of packs written since the last refresh (by any host)."""
        for name in bucket.list("packs/"):
            if not name.endswith(".idx") or name in self._read:
                continue
            raw = bucket.get(name)
            if raw is not None:
                self.add(*_parse_index(name.removesuffix(".idx"), raw))
            with self._lock:
                self._read.add(name)

    def get(self, digest: str) -> Location | None:
        with self._lock:
            return self._where.get(digest)

    def delta(self, digest: str) -> Delta | None:
        """How ``digest`` is rebuilt, if the store holds it as a delta."""
        with self._lock:
            return self._deltas.get(digest)

    def deltas(self) -> dict[str, Delta]:
        with self._lock:
            return dict(self._deltas)

    def add(self, locations: dict[str, Location], deltas: dict[str, Delta] | None = None
            ) -> None:
        with self._lock:
            self._where.update(locations)
            for digest in locations:  # a chunk written plain since is plain
                self._deltas.pop(digest, None)
            self._deltas.update(deltas or {})

    def forget_pack(self, pack: str) -> None:
        """Stop offering ``pack``'s chunks to uploads (it was found damaged)."""
        with self._lock:
            self._where = {d: loc for d, loc in self._where.items() if loc.pack != pack}
            self._deltas = {d: delta for d, delta in self._deltas.items() if d in self._where}
            self._read.discard(index_name(pack))


def _parse_index(pack: str, raw: bytes) -> tuple[dict[str, Location], dict[str, Delta]]:
    """A pack's chunks and which of them are deltas (entries: digest, offset, length,
    and for a delta how it is rebuilt)."""
    try:
        data = json.loads(raw if raw[:1] == b"{" else _decompress(raw))  # 2: compressed
        if data.get("format") not in INDEX_READS:
            return {}, {}
        where, deltas = {}, {}
        for digest, offset, length, *delta in data["chunks"]:
            where[str(digest)] = Location(pack, int(offset), int(length))
            if delta:
                deltas[str(digest)] = Delta.from_json(delta[0])
        return where, deltas
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}, {}  # not an index this version reads: its chunks are written anew


def _decompress(raw: bytes) -> bytes:
    import zstandard

    try:
        return zstandard.ZstdDecompressor().decompress(raw)
    except zstandard.ZstdError as exc:
        raise ValueError(f"not a pack index: {exc}") from None


class PackWriter:
    """Puts the chunks of one upload that the store lacks into packs, written in the
    pool (each pack, then its index); ``locations`` ends up naming every chunk added."""

    def __init__(self, bucket: Bucket, pool: ThreadPoolExecutor, index: PackIndex,
                 transfers: int, deltas: bool = False, level: int = ZSTD_LEVEL) -> None:
        self.bucket, self.pool, self.index, self.limit = bucket, pool, index, max(1, transfers)
        self.level = level  # of the plain chunks' zstd
        self.locations: dict[str, Location] = {}
        # The delta chunks the manifest must list (with ``deltas``: an upload whose
        # manifest and fetch know them; without, a chunk held as a delta is written anew).
        self.deltas: dict[str, Delta] = {}
        self.with_deltas = deltas
        self.new_chunks = self.new_bytes = 0
        self._buffer = bytearray()
        self._members: list[tuple[str, int, int]] = []  # digest, offset, length
        self._pending: list[Future[None]] = []
        self._claimed: set[str] = set()

    def add(self, digest: str, data: bytes, delta: Encoder | None = None) -> None:
        """Store the chunk unless the store holds it: as ``delta`` makes it when that
        gives bytes, else compressed."""
        if digest in self._claimed:  # twice in one snapshot
            return
        self._claimed.add(digest)
        known = self.index.get(digest)
        usable = self._rebuildable(digest) if self.with_deltas else not self.index.delta(digest)
        if known is not None and usable:
            self.locations[digest] = known
            self._refer(digest, self.index.delta(digest))
            return
        encoded = delta() if delta is not None and self.with_deltas else None
        blob = encoded[0] if encoded else compress(data, self.level)
        self._refer(digest, encoded[1] if encoded else None)
        self._members.append((digest, len(self._buffer), len(blob)))
        self._buffer += blob
        self.new_chunks += 1
        self.new_bytes += len(blob)
        if len(self._buffer) >= PACK_BYTES:
            self._seal()

    def _refer(self, digest: str, delta: Delta | None) -> None:
        """Note that the snapshot needs ``delta``'s bases (and theirs), which the store
        holds: the manifest says where they lie and how to rebuild them."""
        if delta is None:
            return
        self.deltas[digest] = delta
        for ref in delta.base:
            known = self.index.get(ref.digest)
            if known is not None and ref.digest not in self.locations:
                self.locations[ref.digest] = known
                self._refer(ref.digest, self.index.delta(ref.digest))

    def _rebuildable(self, digest: str, depth: int = 0) -> bool:
        """Whether a chunk the store holds can be rebuilt: plain, or a delta whose bases
        the store holds and can rebuild (a damaged pack's chunks are no base)."""
        delta = self.index.delta(digest)
        if delta is None:
            return True
        if depth >= MAX_CHAIN:
            return False
        return all(self.index.get(ref.digest) is not None
                   and self._rebuildable(ref.digest, depth + 1) for ref in delta.base)

    def finish(self) -> None:
        """Write what is buffered and wait for the writes; the first error is raised."""
        if self._members:
            self._seal()
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def abandon(self) -> None:
        """Wait for the writes started, ignoring their errors (the upload failed)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.cancel() or future.exception()

    def _seal(self) -> None:
        data, members = bytes(self._buffer), self._members
        self._buffer, self._members = bytearray(), []
        pack = pack_name(data)
        placed = {digest: Location(pack, offset, length) for digest, offset, length in members}
        deltas = {digest: self.deltas[digest] for digest in placed if digest in self.deltas}
        self.locations.update(placed)
        if len(self._pending) >= self.limit:  # bound the packs held in memory
            self._pending.pop(0).result()
        self._pending.append(self.pool.submit(self._write, pack, data, placed, deltas))

    def _write(self, pack: str, data: bytes, placed: dict[str, Location],
               deltas: dict[str, Delta]) -> None:
        self.bucket.put(pack, data)
        chunks = [[d, loc.offset, loc.length, *([deltas[d].to_json()] if d in deltas else [])]
                  for d, loc in placed.items()]
        index = json.dumps({"format": INDEX_FORMAT, "chunks": chunks}).encode()
        self.bucket.put(index_name(pack), compress(index))  # after its pack
        self.index.add(placed, deltas)


@dataclasses.dataclass(frozen=True)
class Span:
    """One ranged read: bytes ``start`` to ``end`` of ``pack``, holding ``chunks``."""

    pack: str
    start: int
    end: int
    chunks: tuple[tuple[str, Location], ...]


def plan_spans(wanted: Iterable[tuple[str, Location]], gap: int = RANGE_GAP,
               most: int = RANGE_MOST) -> list[Span]:
    """The reads that bring ``wanted``: neighbours in a pack (at most ``gap`` bytes
    apart) share a read of at most ``most`` bytes (or one chunk, if longer)."""
    by_pack: dict[str, list[tuple[str, Location]]] = {}
    for digest, loc in wanted:
        by_pack.setdefault(loc.pack, []).append((digest, loc))
    return [span for pack, chunks in by_pack.items()
            for span in pack_spans(pack, chunks, gap, most)]


def pack_spans(pack: str, chunks: list[tuple[str, Location]], gap: int = RANGE_GAP,
               most: int = RANGE_MOST) -> Iterator[Span]:
    """``plan_spans`` for the chunks of one pack, one read at a time (a fetch starts
    the first while it plans the rest: planning 15,000 chunks takes ~80 ms here)."""
    run: list[tuple[str, Location]] = []
    start = end = 0
    for digest, loc in sorted(chunks, key=lambda item: item[1].offset):
        offset = loc.offset
        if run and (offset - end > gap or offset + loc.length - start > most):
            yield Span(pack, start, end, tuple(run))
            run = []
        if not run:
            start = end = offset
        run.append((digest, loc))
        end = max(end, offset + loc.length)
    if run:
        yield Span(pack, start, end, tuple(run))
