"""Putting a local snapshot into the shared store: packs of new chunks first (packs.py),
the manifest last.

``upload_snapshot`` does one snapshot; ``Uploader`` runs them in a background
thread after a snapshot is published, so no boot waits for the store, and tries
again with a growing delay while the store can't be reached (the snapshot stays
usable on this host meanwhile).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coldsnap.server.remote_store.bucket import Bucket, StoreUnavailable
from coldsnap.server.remote_store.chunks import SNAPSHOT_LEVEL, split_file
from coldsnap.server.remote_store.deltas import DeltaBase, previous_snapshot
from coldsnap.server.remote_store.fs_tar import pack
from coldsnap.server.remote_store.manifest import (
    FS_TAR,
    ChunkRef,
    Manifest,
    StoredFile,
    manifest_name,
)
from coldsnap.server.remote_store.packs import PackIndex, PackWriter

RETRY_FIRST_S = 2.0  # the first retry after the store failed; doubled up to RETRY_MAX_S
RETRY_MAX_S = 300.0
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Uploaded:
    """What an upload did: all chunks of the snapshot, and the new ones it wrote."""

    chunks: int
    size_bytes: int
    new_chunks: int
    new_bytes: int  # compressed, as stored in new packs
    seconds: float
    delta_chunks: int = 0  # new chunks stored as deltas against the previous version


def upload_snapshot(bucket: Bucket, snapshot: Path, pool: ThreadPoolExecutor,
                    transfers: int, index: PackIndex) -> Uploaded | None:
    """Store the snapshot at ``snapshot`` (a dir of the local store); None if the store
    has it already. ``index`` learns the packs written by anyone since it last looked."""
    t0 = time.monotonic()
    meta = json.loads((snapshot / "meta.json").read_text())
    name = manifest_name(meta["host_key"], meta["key"])
    if _readable_manifest(bucket, name):
        return None
    index.refresh(bucket)
    packs = PackWriter(bucket, pool, index, transfers, deltas=True, level=SNAPSHOT_LEVEL)
    previous = previous_snapshot(snapshot)
    base = DeltaBase(previous, snapshot, index) if previous is not None else None
    scratch = Path(tempfile.mkdtemp(prefix="upload-", dir=snapshot.parent.parent / ".staging"))
    try:
        pack(snapshot / "fs", scratch / FS_TAR)
        # The files published, not those a restore wrote beside them since (its log).
        sources = [(f"images/{name}", snapshot / "images" / name) for name in
                   sorted(meta["files"])]
        files = [_store_file(label, path, packs, base) for label, path in
                 [*sources, (FS_TAR, scratch / FS_TAR)]]
        packs.finish()
    finally:
        packs.abandon()
        shutil.rmtree(scratch, ignore_errors=True)
    manifest = Manifest(meta["key"], meta["host_key"], tuple(files), meta, packs.locations,
                        packs.deltas)
    bucket.put(name, manifest.to_json())  # last: now the snapshot is in the store
    return Uploaded(sum(len(f.chunks) for f in files), manifest.size_bytes,
                    packs.new_chunks, packs.new_bytes, time.monotonic() - t0,
                    base.stored if base else 0)


def _readable_manifest(bucket: Bucket, name: str) -> bool:
    """Whether the store has a manifest at ``name`` that this version reads (one of an
    older format is replaced)."""
    raw = bucket.get(name)
    if raw is None:
        return False
    try:
        Manifest.from_json(raw)
        return True
    except ValueError as exc:
        logger.info("replacing %s in the store, which this version can't read: %s", name, exc)
        return False


def _store_file(label: str, path: Path, packs: PackWriter, base: DeltaBase | None
                ) -> StoredFile:
    """The file's chunks into packs; an image file's new chunks as deltas against the
    previous version's where that pays (the filesystem layer's tar is made anew)."""
    refs = []
    image = label.removeprefix("images/") if label.startswith("images/") else None
    for piece in split_file(path):
        refs.append(ChunkRef(piece.digest, len(piece.data)))
        encoder = base.encoder(image, piece) if base and image else None
        packs.add(piece.digest, piece.data, encoder)
    return StoredFile(label, path.stat().st_size, tuple(refs))


@dataclasses.dataclass
class _Job:
    snapshot: Path
    attempts: int = 0
    due: float = 0.0


class Uploader:
    """Uploads snapshots one at a time in a background thread, retrying while the store
    is unreachable: the first retry after ``RETRY_FIRST_S``, then twice as long each
    time, up to ``RETRY_MAX_S``."""

    def __init__(self, upload: Callable[[Path], Uploaded | None], where: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._upload, self._where, self._clock = upload, where, clock
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="store-upload", daemon=True)
        self._thread.start()

    def submit(self, snapshots: Iterable[Path]) -> None:
        with self._cond:
            queued = {job.snapshot for job in self._jobs}
            self._jobs += [_Job(path) for path in snapshots if path not in queued]
            self._cond.notify_all()

    def idle(self) -> bool:
        """True when nothing waits or runs (tests wait for it)."""
        with self._cond:
            return not self._jobs and not self._busy

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _next(self) -> _Job | None:
        with self._cond:
            while not self._closed:
                now = self._clock()
                due = [job for job in self._jobs if job.due <= now]
                if due:
                    self._jobs.remove(due[0])
                    self._busy = True
                    return due[0]
                wait = min((job.due - now for job in self._jobs), default=None)
                self._cond.wait(wait)
            return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                self._attempt(job)
            finally:
                with self._cond:
                    self._busy = False

    def _attempt(self, job: _Job) -> None:
        key = job.snapshot.name
        try:
            done = self._upload(job.snapshot)
        except StoreUnavailable as exc:
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** job.attempts)
            logger.warning("upload of memory snapshot %s to %s failed (try %d), retrying in "
                           "%.0f s; it is used on this host meanwhile: %s", key, self._where,
                           job.attempts + 1, delay, exc)
            with self._cond:
                self._jobs.append(_Job(job.snapshot, job.attempts + 1, self._clock() + delay))
            return
        except FileNotFoundError:  # deleted (rm, gc) before it was uploaded
            logger.info("memory snapshot %s was deleted before its upload to %s", key,
                        self._where)
            return
        except Exception:  # a bug must not end the thread: later snapshots still go
            logger.exception("upload of memory snapshot %s to %s failed", key, self._where)
            return
        if done is None:
            logger.info("memory snapshot %s is in %s already", key, self._where)
            return
        logger.info(
            "uploaded memory snapshot %s to %s in %.1f s: %.1f MB in %d chunks, %d of them "
            "new (%.1f MB compressed, %d as deltas against the previous version)", key,
            self._where, done.seconds, done.size_bytes / 1e6, done.chunks, done.new_chunks,
            done.new_bytes / 1e6, done.delta_chunks)
