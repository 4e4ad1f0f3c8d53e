"""Chunks a fetch finds in this host's local store, in an older version of the function.

A host that made a function's previous snapshot (or fetched it and lost its chunk
cache since) holds most of a new version's chunks already: those the versions
share, and the bases of the new version's delta chunks (deltas.py). Cutting the
old version's files as an upload cuts them names those chunks by their hashes;
a fetch then reads them here instead of from the store. Every read is checked
against the chunk's hash: a local file that changed is an OSError (the fetch
fails, the store's copy is not blamed).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

from coldsnap.server.remote_store.chunks import chunk_digest, split_file
from coldsnap.server.remote_store.manifest import Manifest


@dataclasses.dataclass(frozen=True)
class LocalChunk:
    """A chunk's bytes in a file of a local snapshot."""

    path: Path
    offset: int
    size: int

    def read(self, digest: str, check: bool = True) -> bytes:
        """The chunk's bytes; OSError unless they still hash to ``digest``. ``check=False``
        reads without hashing: for a delta's base, whose rebuilt chunk is checked anyway
        (deltas.Rebuilder checks its bases only when that fails)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, self.size, self.offset)
        finally:
            os.close(fd)
        if check and chunk_digest(data) != digest:
            raise OSError(f"{self.path} changed since it was read (chunk {digest} at "
                          f"{self.offset}): delete that snapshot (coldsnap snapshots rm)")
        return data


def function_of(meta: dict[str, Any]) -> tuple[str, str] | None:
    """The app and function a snapshot's metadata names, if any."""
    labels = meta.get("labels") or {}
    if not labels.get("app") or not labels.get("function"):
        return None
    return str(labels["app"]), str(labels["function"])


def other_version(host_dir: Path, meta: dict[str, Any], key: str,
                  before: float = math.inf) -> Path | None:
    """The newest snapshot in ``host_dir`` (a local store's host key) of the function
    ``meta`` names, other than ``key``, made before ``before``; or None."""
    function = function_of(meta)
    if function is None or not host_dir.is_dir():
        return None
    older = []
    for other in host_dir.iterdir():
        try:
            other_meta = json.loads((other / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        created = float(other_meta.get("created_at", 0))
        if other.name != key and function_of(other_meta) == function and created < before:
            older.append((created, other))
    return max(older)[1] if older else None


def find_local(host_dir: Path, manifest: Manifest, wanted: set[str]) -> dict[str, LocalChunk]:
    """Where another version of ``manifest``'s function on this host (the newest) holds
    chunks of ``wanted`` (its image files cut into chunks: ~1 s of CPU for 300 MB)."""
    old = other_version(host_dir, manifest.meta, manifest.key) if wanted else None
    found: dict[str, LocalChunk] = {}
    if old is None:
        return found
    for stored in manifest.files:
        path = old / stored.name
        if not stored.name.startswith("images/") or not path.is_file():
            continue
        for piece in split_file(path):
            if piece.digest in wanted:
                found.setdefault(piece.digest, LocalChunk(path, piece.offset, len(piece.data)))
    return found
