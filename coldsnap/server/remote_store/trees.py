"""Directory trees through the shared store: each a tar stream, chunked into packs.

What images and other non-snapshot objects share with snapshots is the chunk and
pack machinery (chunks.py, packs.py): a tree is packed as a deterministic tar
(fs_tar.py: sorted names, owners, modes, xattrs), cut into content-defined
chunks, and only the chunks the store lacks are written. ``store_trees`` gives
the files and chunk locations of a ``Manifest``; ``fetch_trees`` brings them back,
every chunk checked against its hash (a damaged one is read once more, then
``CorruptChunk`` names its pack), and unpacks each tree.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coldsnap.server.remote_store.bucket import Bucket
from coldsnap.server.remote_store.chunks import CorruptChunk, decompress, split_file
from coldsnap.server.remote_store.fs_tar import pack, unpack
from coldsnap.server.remote_store.manifest import ChunkRef, Location, Manifest, StoredFile
from coldsnap.server.remote_store.packs import PackIndex, PackWriter, Span, plan_spans

TAR = ".tar"


def store_trees(bucket: Bucket, trees: dict[str, Path], pool: ThreadPoolExecutor,
                transfers: int, index: PackIndex, scratch: Path
                ) -> tuple[tuple[StoredFile, ...], dict[str, Location]]:
    """Put each tree (name -> dir) into the store as ``<name>.tar``; the stored files
    and where their chunks lie. ``scratch`` holds the tar streams meanwhile."""
    index.refresh(bucket)
    packs = PackWriter(bucket, pool, index, transfers)
    work = Path(tempfile.mkdtemp(prefix="trees-", dir=scratch))
    try:
        files = []
        for name, tree in sorted(trees.items()):
            tar = work / f"{name}{TAR}"
            pack(tree, tar)
            refs = []
            for piece in split_file(tar):
                refs.append(ChunkRef(piece.digest, len(piece.data)))
                packs.add(piece.digest, piece.data)
            files.append(StoredFile(tar.name, tar.stat().st_size, tuple(refs)))
            tar.unlink()
        packs.finish()
    finally:
        packs.abandon()
        shutil.rmtree(work, ignore_errors=True)
    return tuple(files), dict(packs.locations)


def fetch_trees(bucket: Bucket, manifest: Manifest, into: Path,
                pool: ThreadPoolExecutor) -> int:
    """Unpack each tree of ``manifest`` into ``into/<name>``; the bytes read from the
    store. CorruptChunk, StoreUnavailable, OSError or ValueError when it can't."""
    fds: dict[str, int] = {}
    places: dict[str, list[tuple[int, int, int]]] = {}  # digest: [(fd, offset, size)]
    try:
        for stored in manifest.files:
            _check_name(manifest, stored)
            fd = fds[stored.name] = os.open(into / stored.name,
                                            os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.ftruncate(fd, stored.size)
            for ref, offset in stored.offsets():
                places.setdefault(ref.digest, []).append((fd, offset, ref.size))
        spans = plan_spans((digest, manifest.locations[digest]) for digest in places)
        read = sum(pool.map(lambda span: _read_span(bucket, span, places), spans))
    finally:
        for fd in fds.values():
            os.close(fd)
    for name in fds:
        unpack(into / name, into / name.removesuffix(TAR))
        (into / name).unlink()
    return read


def _check_name(manifest: Manifest, stored: StoredFile) -> None:
    name = stored.name
    if not name.endswith(TAR) or "/" in name or name.startswith("."):
        raise ValueError(f"manifest of {manifest.key} names a file outside its trees: "
                         f"{name!r}")
    if sum(ref.size for ref in stored.chunks) != stored.size:
        raise ValueError(f"manifest of {manifest.key}: the chunks of {name} do not add up "
                         f"to its size ({stored.size} bytes)")


def _read_span(bucket: Bucket, span: Span, places: dict[str, list[tuple[int, int, int]]]
               ) -> int:
    """Write the chunks of one ranged read into their places; the bytes read."""
    data = bucket.get_range(span.pack, span.start, span.end)
    for digest, loc in span.chunks:
        size = places[digest][0][2]
        blob = data[loc.offset - span.start:loc.offset - span.start + loc.length]
        try:
            chunk = decompress(blob, digest, size)
        except CorruptChunk:  # a bad read: once more, on its own
            again = bucket.get_range(loc.pack, loc.offset, loc.offset + loc.length)
            try:
                chunk = decompress(again, digest, size)
            except CorruptChunk as exc:
                exc.pack = loc.pack
                raise
        for fd, offset, _ in places[digest]:
            os.pwrite(fd, chunk, offset)
    return len(data)
