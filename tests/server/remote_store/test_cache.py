"""The host's chunk cache: a size limit, least recently used chunks out first."""

from __future__ import annotations

import os
from pathlib import Path

from coldsnap.server.remote_store.cache import ChunkCache


def aged(cache: ChunkCache, digest: str, seconds_ago: int) -> None:
    """Make ``digest``'s last use ``seconds_ago`` (mtime is a chunk's last use)."""
    when = 1_700_000_000 - seconds_ago
    os.utime(cache.root / digest, (when, when))


def test_past_its_limit_the_cache_evicts_the_least_recently_used(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path / "cache", limit_bytes=300)
    for i, digest in enumerate(("a", "b", "c")):
        cache.put(digest, bytes(100))
        aged(cache, digest, 100 - i)  # a oldest, then b, then c
    assert cache.get("a") == bytes(100)  # a is used: now b is the oldest
    cache.put("d", bytes(100))
    assert "b" not in cache and not (cache.root / "b").exists()
    assert {"a", "c", "d"} <= {p.name for p in cache.root.iterdir()}
    assert cache.size_bytes == 300


def test_a_chunk_larger_than_the_limit_is_not_kept_and_discard_removes(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path / "cache", limit_bytes=50)
    cache.put("big", bytes(51))
    assert cache.get("big") is None and cache.size_bytes == 0
    cache.put("small", b"x")
    cache.discard("small")
    assert cache.get("small") is None and "small" not in cache


def test_a_restart_finds_the_chunks_and_applies_a_smaller_limit(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path / "cache", limit_bytes=1000)
    for i, digest in enumerate(("old", "mid", "new")):
        cache.put(digest, bytes(100))
        aged(cache, digest, 100 - i)
    (cache.root / "cut-short.1a2b3c.tmp").write_bytes(b"half")
    again = ChunkCache(tmp_path / "cache", limit_bytes=200)
    assert sorted(p.name for p in again.root.iterdir()) == ["mid", "new"]
    assert again.get("new") == bytes(100)
