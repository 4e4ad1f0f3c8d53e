"""Fetch's decompression and writes into the staged files: pure logic on temp files."""

from __future__ import annotations

import os
import random
from pathlib import Path

from coldsnap.server.remote_store.cache import ChunkCache
from coldsnap.server.remote_store.chunks import chunk_digest, compress
from coldsnap.server.remote_store.deltas import Rebuilder
from coldsnap.server.remote_store.fetch import Fetched, _Chunks, _decompress_all, _Writes


def test_chunks_land_in_their_places_whatever_order_they_come_in(tmp_path: Path) -> None:
    rng = random.Random(3)
    pieces = [rng.randbytes(rng.randint(1, 50)) for _ in range(3000)]  # past one pwritev
    data = b"".join(pieces)
    offsets = [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]
    fds = [os.open(tmp_path / name, os.O_RDWR | os.O_CREAT, 0o600) for name in "ab"]
    try:
        writes = _Writes()
        order = list(range(len(pieces)))
        rng.shuffle(order)
        for i in order:  # each piece goes to both files, as a chunk found twice does
            writes.add([(fds[0], offsets[i]), (fds[1], len(data) - offsets[i] - len(pieces[i]))],
                       pieces[i])
        writes.add([(fds[0], len(data) + 10)], b"after a hole")
        writes.flush()
    finally:
        for fd in fds:
            os.close(fd)
    assert (tmp_path / "a").read_bytes() == data + bytes(10) + b"after a hole"
    assert (tmp_path / "b").read_bytes() == b"".join(reversed(pieces))


def test_a_read_s_chunks_decompress_in_one_call_and_any_bad_one_fails_them_all() -> None:
    rng = random.Random(5)
    chunks = [rng.randbytes(200) * rng.randint(1, 80) for _ in range(40)]
    blobs = [memoryview(compress(c)) for c in chunks]
    sizes = [len(c) for c in chunks]
    assert [bytes(c) if c is not None else None
            for c in _decompress_all(blobs, sizes)] == chunks
    damaged = blobs[:7] + [memoryview(b"not zstd" + bytes(blobs[7][8:]))] + blobs[8:]
    assert _decompress_all(damaged, sizes) == [None] * len(chunks)  # the caller finds which
    sizes[3] += 1  # a size the manifest gets wrong is damage too
    assert _decompress_all(blobs, sizes) == [None] * len(chunks)
    assert _decompress_all([], []) == []  # a read of delta chunks only has no plain ones


def test_cached_chunks_are_placed_and_a_damaged_one_is_dropped_for_the_store(
        tmp_path: Path) -> None:
    rng = random.Random(8)
    chunks = {chunk_digest(c): c for c in (rng.randbytes(300) * 20 for _ in range(5))}
    cache = ChunkCache(tmp_path / "cache", 1 << 20)
    for digest, chunk in chunks.items():
        cache.put(digest, compress(chunk))
    bad = list(chunks)[2]
    cache.put(bad, compress(b"other bytes"))  # a disk that changed a chunk
    fd = os.open(tmp_path / "file", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        offsets = [i * 6000 for i in range(len(chunks))]
        places = {d: (len(c), [(fd, off)]) for (d, c), off in zip(chunks.items(), offsets,
                                                                  strict=True)}
        fetched = Fetched()
        placer = _Chunks(None, cache, fetched, places,  # type: ignore[arg-type]
                         Rebuilder({}))
        missing = placer.from_cache([*chunks, "0" * 64])
    finally:
        os.close(fd)
    assert missing == [bad, "0" * 64]  # for the store to bring
    assert fetched.cached_chunks == len(chunks) - 1
    assert bad not in cache
    data = (tmp_path / "file").read_bytes()
    for (digest, chunk), off in zip(chunks.items(), offsets, strict=True):
        if digest != bad:
            assert data[off:off + len(chunk)] == chunk
