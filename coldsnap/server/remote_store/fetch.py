"""Bringing a snapshot from the shared store into this host's local store.

The chunks go straight into their places in the staged files, ``transfers`` at a
time, each from the host's chunk cache when it is there and from the store
otherwise, and each checked against its hash (a corrupt one is fetched once more,
then deleted from the store, so that a later upload writes it anew). The staged
snapshot is then published through the local store, which takes the digests of
its image files as for a dump; they must equal the ones taken where it was dumped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coldsnap.engine.base import SnapshotInfo
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.remote_store.bucket import Bucket
from coldsnap.server.remote_store.cache import ChunkCache
from coldsnap.server.remote_store.chunks import CorruptChunk, decompress
from coldsnap.server.remote_store.fs_tar import unpack
from coldsnap.server.remote_store.manifest import FS_TAR, ChunkRef, Manifest, chunk_name

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Fetched:
    """What a fetch took: bytes from the store (compressed) and from the cache, and time."""

    info: SnapshotInfo | None = None  # set once published
    store_bytes: int = 0
    store_chunks: int = 0
    cached_chunks: int = 0
    seconds: float = 0.0

    def timings(self) -> dict[str, float]:
        """The boot's ``fetch_s`` and ``fetch_bytes`` (`apps stats`)."""
        return {"fetch_s": self.seconds, "fetch_bytes": float(self.store_bytes)}

    def describe(self) -> str:
        return (f"{self.store_bytes / 1e6:.1f} MB in {self.seconds * 1000:.0f} ms "
                f"({self.store_chunks} chunks from the store, {self.cached_chunks} from "
                "this host's chunk cache)")


class SnapshotMismatch(Exception):
    """The assembled image files differ from the digests taken where it was dumped."""


class _Chunks:
    """Gets chunks from the cache or the store, counting what came from where."""

    def __init__(self, bucket: Bucket, cache: ChunkCache, fetched: Fetched) -> None:
        self.bucket, self.cache, self.fetched = bucket, cache, fetched
        self._lock = threading.Lock()

    def get(self, ref: ChunkRef) -> bytes:
        blob = self.cache.get(ref.digest)
        if blob is not None:
            try:
                data = decompress(blob, ref.digest, ref.size)
                with self._lock:
                    self.fetched.cached_chunks += 1
                return data
            except CorruptChunk:
                self.cache.discard(ref.digest)  # a bad disk: the store has it
        return self._from_store(ref)

    def _from_store(self, ref: ChunkRef) -> bytes:
        problem: CorruptChunk | None = None
        for attempt in (1, 2):  # a corrupt read is tried once more before giving up
            blob = self.bucket.get(chunk_name(ref.digest))
            if blob is None:
                raise CorruptChunk(ref.digest, "is missing from the store")
            try:
                data = decompress(blob, ref.digest, ref.size)
            except CorruptChunk as exc:
                problem = exc
                logger.warning("%s (read %d of 2)", exc, attempt)
                continue
            self.cache.put(ref.digest, blob)
            with self._lock:
                self.fetched.store_bytes += len(blob)
                self.fetched.store_chunks += 1
            return data
        self.bucket.delete(chunk_name(ref.digest))  # the next upload of it writes it anew
        assert problem is not None
        raise problem


def fetch_snapshot(bucket: Bucket, cache: ChunkCache, store: SnapshotStore,
                   manifest: Manifest, pool: ThreadPoolExecutor) -> Fetched:
    """Assemble ``manifest``'s snapshot and publish it in ``store``. CorruptChunk,
    SnapshotMismatch, StoreUnavailable or OSError when it can't; nothing is left."""
    t0 = time.monotonic()
    fetched = Fetched()
    chunks = _Chunks(bucket, cache, fetched)
    staging = store.staging_dir(manifest.key)
    try:
        (staging / "images").mkdir()
        places = _lay_out(staging, manifest)
        for future in [pool.submit(_fill, chunks, ref, spots) for ref, spots in places.items()]:
            future.result()
        unpack(staging / FS_TAR, staging / "fs")
        (staging / FS_TAR).unlink()
        meta = {**manifest.meta, "fetched_from": str(bucket.url)}
        info = store.publish(staging, manifest.key, meta)
    except BaseException:
        store.discard(staging)
        raise
    if info.extra.get("digests") != manifest.meta.get("digests"):
        store.delete(manifest.key)
        raise SnapshotMismatch(f"memory snapshot {manifest.key}'s image files, assembled, "
                               "differ from the digests taken where it was made")
    fetched.info = info
    fetched.seconds = time.monotonic() - t0
    return fetched


def _lay_out(staging: Path, manifest: Manifest) -> dict[ChunkRef, list[tuple[Path, int]]]:
    """Make each file at its size; each distinct chunk with the places it goes."""
    places: dict[ChunkRef, list[tuple[Path, int]]] = {}
    for stored in manifest.files:
        path = staging / stored.name
        if path.parent not in (staging, staging / "images") or path.name in ("", ".", ".."):
            raise ValueError(f"manifest of {manifest.key} names a file outside the "
                             f"snapshot: {stored.name!r}")
        with path.open("wb") as f:
            f.truncate(stored.size)
        for ref, offset in stored.offsets():
            places.setdefault(ref, []).append((path, offset))
    return places


def _fill(chunks: _Chunks, ref: ChunkRef, spots: list[tuple[Path, int]]) -> None:
    data = chunks.get(ref)
    for path, offset in spots:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
