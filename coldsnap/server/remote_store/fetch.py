"""Bringing a snapshot from the shared store into this host's local store.

The chunks go straight into their places in the staged files: those in the
host's chunk cache from there, the rest from the store's packs in ranged reads of
neighbouring chunks (packs.py), ``transfers`` at a time. Each chunk is checked
against its hash; a corrupt one is read once more on its own, then the fetch fails
naming its pack (``CorruptChunk.pack``), whose index the caller deletes so that a
later upload writes its chunks anew. Since every chunk matched its hash and the
manifest's chunks cover each file exactly, the staged files are the ones whose
digests the manifest carries: the snapshot is published with those digests, not
hashed a second time.
"""

from __future__ import annotations

import array
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coldsnap.engine.base import SnapshotInfo
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.remote_store.bucket import Bucket
from coldsnap.server.remote_store.cache import ChunkCache
from coldsnap.server.remote_store.chunks import CorruptChunk, chunk_digest, compress, decompress
from coldsnap.server.remote_store.deltas import Rebuilder
from coldsnap.server.remote_store.fs_tar import unpack
from coldsnap.server.remote_store.local_chunks import LocalChunk, find_local
from coldsnap.server.remote_store.manifest import FS_TAR, Location, Manifest
from coldsnap.server.remote_store.packs import Span, pack_spans

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Fetched:
    """What a fetch took: bytes from the store (compressed) and from the cache, and time."""

    info: SnapshotInfo | None = None  # set once published
    store_bytes: int = 0
    store_chunks: int = 0
    store_reads: int = 0  # ranged GETs of packs
    cached_chunks: int = 0
    local_chunks: int = 0  # from an older version in the local store (local_chunks.py)
    seconds: float = 0.0

    def timings(self) -> dict[str, float]:
        """The boot's ``fetch_s`` and ``fetch_bytes`` (`apps stats`)."""
        return {"fetch_s": self.seconds, "fetch_bytes": float(self.store_bytes)}

    def describe(self) -> str:
        local = (f", {self.local_chunks} from an older version on this host"
                 if self.local_chunks else "")
        return (f"{self.store_bytes / 1e6:.1f} MB in {self.seconds * 1000:.0f} ms "
                f"({self.store_chunks} chunks from the store in {self.store_reads} reads, "
                f"{self.cached_chunks} from this host's chunk cache{local})")


_IOV_MAX = 1024  # buffers one pwritev takes (Linux's UIO_MAXIOV)
WRITE_BATCH = 256  # chunks placed, then written
Buffer = bytes | memoryview
_Places = dict[str, tuple[int, list[tuple[int, int]]]]  # digest: size, [(fd, offset)]


class _Chunks:
    """Puts chunks into their places, from the cache or the store, counting from where."""

    def __init__(self, bucket: Bucket, cache: ChunkCache, fetched: Fetched,
                 places: _Places, rebuilder: Rebuilder) -> None:
        self.bucket, self.cache, self.fetched, self.places = bucket, cache, fetched, places
        self.rebuilder = rebuilder  # delta chunks (deltas.py)
        # Kept once the snapshot is published: compressed, or plain for a delta chunk.
        self.for_cache: list[tuple[str, bytes]] = []
        self.deltas: list[tuple[str, Location, bytes]] = []  # read, rebuilt once all are
        self._lock = threading.Lock()

    def from_cache(self, digests: list[str]) -> list[str]:
        """Place those of ``digests`` that the cache holds intact; the others, returned."""
        found = [(d, blob) for d in digests if (blob := self.cache.get(d)) is not None]
        blobs = [memoryview(blob) for _, blob in found]
        sizes = [self.places[digest][0] for digest, _ in found]
        placed, writes = set(), _Writes()
        for (digest, blob), chunk in zip(found, _decompress_all(blobs, sizes), strict=True):
            if chunk is not None and chunk_digest(chunk) == digest:
                writes.add(self.places[digest][1], chunk)
                self.rebuilder.keep(digest, blob)
                placed.add(digest)
        for digest, blob in found:
            if digest not in placed:  # one bad blob fails the batch: which, and why
                try:
                    writes.add(self.places[digest][1],
                               decompress(blob, digest, self.places[digest][0]))
                    self.rebuilder.keep(digest, blob)
                    placed.add(digest)
                except CorruptChunk:
                    self.cache.discard(digest)  # a bad disk: the store has it
        writes.flush()
        with self._lock:
            self.fetched.cached_chunks += len(placed)
        return [d for d in digests if d not in placed]

    def from_local(self, found: list[tuple[str, LocalChunk]]) -> None:
        writes = _Writes()
        for digest, where in found:
            if self.places[digest][1]:  # a base only (no place) is read when a delta is
                writes.add(self.places[digest][1], where.read(digest))
            self.rebuilder.keep_local(digest, where)
        writes.flush()
        with self._lock:
            self.fetched.local_chunks += len(found)

    def from_store(self, span: Span) -> None:
        data = memoryview(self.bucket.get_range(span.pack, span.start, span.end))
        got = [(digest, loc, data[loc.offset - span.start:loc.offset - span.start + loc.length])
               for digest, loc in span.chunks]
        with self._lock:  # deltas wait for all reads: their bases come in any of them
            self.deltas += [(d, loc, bytes(blob)) for d, loc, blob in got
                            if d in self.rebuilder.deltas]
            self.fetched.store_bytes += len(data)
            self.fetched.store_chunks += len(span.chunks)
            self.fetched.store_reads += 1
        # Placed in this thread, all reads at once: capping them at the cores' number
        # measured slower on a loaded machine (fewer threads, a smaller share of it).
        self.place([item for item in got if item[0] not in self.rebuilder.deltas])

    def place(self, got: Sequence[tuple[str, Location, Buffer]]) -> None:
        """Check chunks read from the store (rebuild deltas) and write them. Plain ones
        are decompressed in one call (``_decompress_all``)."""
        plain = [i for i, (digest, _, _) in enumerate(got) if digest not in self.rebuilder.deltas]
        fast = dict(zip(plain, _decompress_all([memoryview(got[i][2]) for i in plain],
                                               [self.places[got[i][0]][0] for i in plain]),
                        strict=True))
        writes, kept = _Writes(), []
        for i, (digest, loc, blob) in enumerate(got):
            chunk: Buffer | None = fast.get(i)
            if chunk is not None and chunk_digest(chunk) == digest:
                if digest in self.rebuilder.bases:
                    self.rebuilder.keep(digest, bytes(blob))
            else:  # a delta, or which one is bad and how: read once more
                chunk, blob = self._checked(digest, loc, bytes(blob))
            writes.add(self.places[digest][1], chunk)
            if self.cache.limit_bytes:
                kept.append((digest, bytes(chunk if digest in self.rebuilder.deltas else blob)))
            if i % WRITE_BATCH == WRITE_BATCH - 1:  # a wave's part can be thousands
                writes.flush()
        writes.flush()
        if kept:
            with self._lock:
                self.for_cache += kept

    def _checked(self, digest: str, loc: Location, blob: bytes) -> tuple[bytes, bytes]:
        """The chunk's bytes and the blob they came from; a corrupt read is tried once
        more before giving up."""
        size = self.places[digest][0]
        try:
            return self.rebuilder.chunk(digest, blob, size), blob
        except CorruptChunk as exc:
            logger.warning("%s in %s (read 1 of 2)", exc, loc.pack)
        blob = self.bucket.get_range(loc.pack, loc.offset, loc.offset + loc.length)
        try:
            return self.rebuilder.chunk(digest, blob, size), blob
        except CorruptChunk as exc:
            exc.pack = loc.pack
            raise


_decompressors = threading.local()  # a ZstdDecompressor serves one thread at a time


def _decompress_all(blobs: list[memoryview], sizes: list[int]) -> list[memoryview | None]:
    """Each blob's chunk, in one call that lets go of the GIL once: a call per chunk
    lets go of it and takes it back ~15,000 times a snapshot, and with the other
    transfers' threads waiting for it each take-back stalls (the fetch spent more time
    so than decompressing). All None when any blob fails: the caller finds which."""
    import zstandard

    if not blobs:  # zstandard divides by their count (SIGFPE)
        return []
    if not hasattr(_decompressors, "zstd"):
        _decompressors.zstd = zstandard.ZstdDecompressor()
    try:
        chunks = _decompressors.zstd.multi_decompress_to_buffer(
            blobs, decompressed_sizes=array.array("Q", sizes), threads=1)
    except (zstandard.ZstdError, ValueError):
        return [None] * len(blobs)
    return [memoryview(chunks[i]) for i in range(len(blobs))]


class _Writes:
    """Chunks bound for the staged files, written in runs: a pack holds a file's new
    chunks in order, so a read's chunks mostly follow each other in one file, and a
    run is one system call (``pwritev``) instead of one per chunk."""

    def __init__(self) -> None:
        self._spots: list[tuple[int, int, Buffer]] = []  # fd, offset, bytes

    def add(self, spots: list[tuple[int, int]], data: Buffer) -> None:
        self._spots += [(fd, offset, data) for fd, offset in spots]

    def flush(self) -> None:
        run: list[Buffer] = []
        fd = start = end = -1
        for spot_fd, offset, data in sorted(self._spots, key=lambda s: (s[0], s[1])):
            if run and (spot_fd != fd or offset != end or len(run) == _IOV_MAX):
                os.pwritev(fd, run, start)
                run = []
            if not run:
                fd, start, end = spot_fd, offset, offset
            run.append(data)
            end += len(data)
        if run:
            os.pwritev(fd, run, start)
        self._spots = []


def fetch_snapshot(bucket: Bucket, cache: ChunkCache, store: SnapshotStore,
                   manifest: Manifest, pool: ThreadPoolExecutor,
                   started: float | None = None) -> Fetched:
    """Assemble ``manifest``'s snapshot and publish it in ``store``. CorruptChunk,
    StoreUnavailable, OSError or ValueError when it can't; nothing is left.
    ``started``: when the fetch began (its manifest's read), for ``Fetched.seconds``."""
    t0 = time.monotonic() if started is None else started
    fetched = Fetched()
    staging = store.staging_dir(manifest.key)
    fds: list[int] = []
    try:
        (staging / "images").mkdir()
        rebuilder = Rebuilder(manifest.deltas)
        places = _lay_out(staging, manifest, fds)
        for digest, size in rebuilder.bases.items():  # bases only: no place in the files
            places.setdefault(digest, (size, []))
        chunks = _Chunks(bucket, cache, fetched, places, rebuilder)
        _fill(chunks, manifest, pool, store.host_dir)
        for fd in fds:
            os.close(fd)
        fds.clear()
        unpack(staging / FS_TAR, staging / "fs")
        (staging / FS_TAR).unlink()
        meta = {**manifest.meta, "fetched_from": str(bucket.url)}
        info = store.publish(staging, manifest.key, meta, digests=manifest.meta.get("digests"))
    except BaseException:
        for fd in fds:
            os.close(fd)
        store.discard(staging)
        raise
    fetched.info = info
    fetched.seconds = time.monotonic() - t0
    if chunks.for_cache:  # after the fetch: the boot restores meanwhile
        pool.submit(_keep, cache, chunks.for_cache, set(manifest.deltas))
    return fetched


def _keep(cache: ChunkCache, chunks: list[tuple[str, bytes]], plain: set[str]) -> None:
    """Put fetched chunks into the cache, compressing those in ``plain`` (delta chunks:
    the cache holds every chunk compressed on its own)."""
    try:
        for digest, blob in chunks:
            cache.put(digest, compress(blob) if digest in plain else blob)
    except OSError as exc:  # a full disk: later fetches take more from the store
        logger.warning("keeping fetched chunks in the chunk cache %s failed: %s",
                       cache.root, exc)


def _fill(chunks: _Chunks, manifest: Manifest, pool: ThreadPoolExecutor,
          host_dir: Path) -> None:
    """Every chunk into its places: the cache's first, those of an older version on
    this host when delta chunks' bases are missing, then the rest from the store."""
    cached = chunks.cache.holding(chunks.places)  # one look, not two per chunk
    digests = [d for d in chunks.places if d in cached]
    batches = [digests[i:i + 256] for i in range(0, len(digests), 256)]
    missing = {d for d in chunks.places if d not in cached}
    for future in [pool.submit(chunks.from_cache, batch) for batch in batches]:
        missing.update(future.result())
    found = list(find_local(host_dir, manifest, missing).items()
                 if missing & chunks.rebuilder.bases.keys() else [])
    for done in [pool.submit(chunks.from_local, found[i:i + 256])
                 for i in range(0, len(found), 256)]:
        done.result()
    missing.difference_update(digest for digest, _ in found)
    missing = _still_needed(missing, chunks)
    by_pack: dict[str, list[tuple[str, Location]]] = {}
    for digest in missing:
        loc = manifest.locations[digest]
        by_pack.setdefault(loc.pack, []).append((digest, loc))
    reads = [pool.submit(chunks.from_store, span)  # each read starts once planned
             for pack, wanted in by_pack.items() for span in pack_spans(pack, wanted)]
    for read in reads:
        read.result()
    # Deltas are rebuilt by half as many threads as there are cores, each from one
    # stretch of them (neighbours share their bases). Measured on 2 cores, the
    # embedder's 13,000 deltas: a thread per 256 of them 1.3-1.5 s, two threads 1.2 s,
    # one 1.0 s (the kernel's share, page faults of the threads' malloc arenas, halves).
    workers = max(1, len(os.sched_getaffinity(0)) // 2)
    for wave in chunks.rebuilder.waves(chunks.deltas):  # a delta after its bases
        size = -(-len(wave) // workers)
        parts = [wave[i:i + size] for i in range(0, len(wave), size)]
        for done in [pool.submit(chunks.place, part) for part in parts]:
            done.result()


def _still_needed(missing: set[str], chunks: _Chunks) -> set[str]:
    """The chunks of ``missing`` the snapshot needs from the store: those with a place in
    it, and the bases (and theirs) of the deltas among them. A base of a chunk found in
    the cache or an older version here is not (the manifest lists the bases of all its
    deltas, and the chunks this version shares with the one held here may be deltas)."""
    deltas = chunks.rebuilder.deltas
    needed: set[str] = set()
    todo = [digest for digest in missing if chunks.places[digest][1]]
    while todo:
        digest = todo.pop()
        if digest not in needed:
            needed.add(digest)
            delta = deltas.get(digest)
            todo += [ref.digest for ref in delta.base if ref.digest in missing] if delta else []
    return needed


def _lay_out(staging: Path, manifest: Manifest, fds: list[int]) -> _Places:
    """Make each file at its size, open (into ``fds``); each distinct chunk with its size
    and the places it goes. ValueError when the manifest's files are not a snapshot's."""
    places: _Places = {}
    for stored in manifest.files:
        path = staging / stored.name
        if path.parent not in (staging, staging / "images") or path.name in ("", ".", ".."):
            raise ValueError(f"manifest of {manifest.key} names a file outside the "
                             f"snapshot: {stored.name!r}")
        if sum(ref.size for ref in stored.chunks) != stored.size:
            raise ValueError(f"manifest of {manifest.key}: the chunks of {stored.name} do "
                             f"not add up to its size ({stored.size} bytes)")
        # Readable as CRIU's own images are: in a user namespace the tree's mapped root
        # restores from them.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fds.append(fd)
        os.fchmod(fd, 0o644)  # whatever the umask
        os.ftruncate(fd, stored.size)
        for ref, offset in stored.offsets():
            places.setdefault(ref.digest, (ref.size, []))[1].append((fd, offset))
    return places
