"""The host's chunk cache: chunks fetched from the shared store, kept for later fetches.

A new version of a function shares most of its snapshot's chunks with the last
one, and several functions share the interpreter's pages: a fetch takes from
here what it can and asks the store for the rest. Entries are the chunks as the
store keeps them (compressed), one file per chunk named by its hash. The cache
holds at most ``limit_bytes``; past it the least recently used chunks go (a
file's mtime is its last use).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path


class ChunkCache:
    """Compressed chunks by hash, at most ``limit_bytes`` of them, least recently used
    out first. Thread-safe; ``limit_bytes`` 0 keeps nothing."""

    def __init__(self, root: Path, limit_bytes: int) -> None:
        self.root = root
        self.limit_bytes = limit_bytes
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        self._sizes = {p.name: p.stat().st_size for p in root.iterdir()
                       if p.is_file() and not p.name.endswith(".tmp")}
        self._total = sum(self._sizes.values())  # kept as entries come and go
        for leftover in root.glob("*.tmp"):  # a write cut short by a stop
            leftover.unlink(missing_ok=True)
        self._evict()

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._total

    def __contains__(self, digest: str) -> bool:
        with self._lock:
            return digest in self._sizes

    def holding(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` the cache holds (one lock for all of them)."""
        with self._lock:
            return {d for d in digests if d in self._sizes} if self._sizes else set()

    def get(self, digest: str) -> bytes | None:
        """The chunk's stored bytes (and it becomes the most recently used), or None."""
        path = self.root / digest
        try:
            data = path.read_bytes()
            os.utime(path)
        except OSError:
            with self._lock:
                self._total -= self._sizes.pop(digest, 0)
            return None
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Keep ``data`` as chunk ``digest``, evicting the least recently used past the limit."""
        if len(data) > self.limit_bytes:
            return
        tmp = self.root / f"{digest}.{uuid.uuid4().hex[:6]}.tmp"
        tmp.write_bytes(data)
        os.rename(tmp, self.root / digest)
        with self._lock:
            self._total += len(data) - self._sizes.get(digest, 0)
            self._sizes[digest] = len(data)
        self._evict()

    def discard(self, digest: str) -> None:
        """Drop a chunk (its bytes were found wrong)."""
        (self.root / digest).unlink(missing_ok=True)
        with self._lock:
            self._total -= self._sizes.pop(digest, 0)

    def _evict(self) -> None:
        with self._lock:
            if self._total <= self.limit_bytes:
                return
            by_use = sorted(self._sizes, key=self._last_use)
            for digest in by_use:
                if self._total <= self.limit_bytes:
                    break
                (self.root / digest).unlink(missing_ok=True)
                self._total -= self._sizes.pop(digest)

    def _last_use(self, digest: str) -> int:
        try:
            return (self.root / digest).stat().st_mtime_ns
        except OSError:
            return 0
