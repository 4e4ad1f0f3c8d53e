"""Which old bytes an upload compares a new chunk with, and how a fetch reads local
bases: pure logic on files in a temporary dir (no store)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from coldsnap.server.remote_store import local_chunks
from coldsnap.server.remote_store.chunks import Piece, chunk_digest, compress, split_file
from coldsnap.server.remote_store.deltas import DeltaBase, Rebuilder, encode
from coldsnap.server.remote_store.local_chunks import LocalChunk
from coldsnap.server.remote_store.manifest import ChunkRef, Delta, Location
from coldsnap.server.remote_store.packs import PackIndex

NAME = "core-1.img"  # not a pages file: an old chunk is looked for at the same offset
MOVED = 40 * 1024  # further than the 16 KiB either side an upload once looked


def versions(root: Path) -> tuple[Path, Path, list[Piece]]:
    """An old and a new snapshot dir whose file differs by 40 KiB put in front: every
    old byte lies 40 KiB before its place in the new file."""
    rng = random.Random(7)
    old_bytes = rng.randbytes(512 * 1024)
    for version, data in (("old", old_bytes), ("new", rng.randbytes(MOVED) + old_bytes)):
        (root / version / "images").mkdir(parents=True)
        (root / version / "images" / NAME).write_bytes(data)
    return root / "old", root / "new", list(split_file(root / "old" / "images" / NAME))


def holding(pieces: list[Piece]) -> PackIndex:
    index = PackIndex()
    index.add({p.digest: Location("packs/p", 0, len(p.data)) for p in pieces})
    return index


def middle_piece(new: Path) -> Piece:
    """A chunk of the new file far from both ends."""
    pieces = list(split_file(new / "images" / NAME))
    return next(p for p in pieces if p.offset > 160 * 1024)


def test_a_chunk_whose_bytes_moved_tens_of_kib_is_a_small_delta(tmp_path: Path) -> None:
    old, new, old_pieces = versions(tmp_path)
    piece = middle_piece(new)
    found = DeltaBase(old, new, holding(old_pieces)).encode(NAME, piece)
    assert found is not None, "the old bytes 40 KiB away were not in the window"
    blob, delta = found
    assert len(blob) < len(compress(piece.data)) / 10, (len(blob), len(piece.data))
    old_data = (old / "images" / NAME).read_bytes()
    first = next(p.offset for p in old_pieces if p.digest == delta.base[0].digest)
    base = old_data[first:first + sum(ref.size for ref in delta.base)]
    assert base[delta.skip:delta.skip + delta.length].find(piece.data[:4096]) >= 0


def test_bases_the_store_lacks_narrow_the_window_unless_it_lacks_the_middle_one(
        tmp_path: Path) -> None:
    old, new, old_pieces = versions(tmp_path)
    piece = middle_piece(new)
    wide = DeltaBase(old, new, holding(old_pieces)).encode(NAME, piece)
    assert wide is not None and len(wide[1].base) >= 3
    outer = wide[1].base[0]  # the store lacks the window's first chunk
    found = DeltaBase(old, new, holding([p for p in old_pieces if p.digest != outer.digest])
                      ).encode(NAME, piece)
    assert found is not None, "one missing outer base dropped the whole delta"
    assert outer not in found[1].base and set(found[1].base) < set(wide[1].base)

    middle = next(p for p in old_pieces if p.offset <= piece.offset < p.offset + len(p.data))
    lacking = holding([p for p in old_pieces if p.digest != middle.digest])
    assert DeltaBase(old, new, lacking).encode(NAME, piece) is None


def test_a_local_base_is_read_unhashed_and_checked_when_its_delta_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(8)
    base = rng.randbytes(16 * 1024)
    new = bytearray(base)
    new[100:108] = b"12345678"  # a pointer moved
    path = tmp_path / "pages-2.img"
    path.write_bytes(base)
    ref = ChunkRef(chunk_digest(base), len(base))
    digest = chunk_digest(bytes(new))
    blob = encode(bytes(new), base)

    hashed: list[int] = []

    def counted(data: bytes) -> str:
        hashed.append(len(data))
        return chunk_digest(data)

    monkeypatch.setattr(local_chunks, "chunk_digest", counted)
    rebuilder = Rebuilder({digest: Delta((ref,), 0, len(base))})
    rebuilder.keep_local(ref.digest, LocalChunk(path, 0, len(base)))
    assert rebuilder.chunk(digest, blob, len(new)) == new
    assert hashed == [], "the local base was hashed although its delta rebuilt right"

    path.write_bytes(rng.randbytes(len(base)))  # the old snapshot's file changed since
    rebuilder = Rebuilder({digest: Delta((ref,), 0, len(base))})
    rebuilder.keep_local(ref.digest, LocalChunk(path, 0, len(base)))
    with pytest.raises(OSError, match="changed since it was read"):
        rebuilder.chunk(digest, blob, len(new))  # the host's file, not the store, is blamed
