"""The on-disk cache of built images: one directory per key, counted once marked.

``<images>/<key>/`` holds what a build made (venv, layers, build log) and, last,
``image.json``: the marker, written to a temp file and renamed into place. A
directory without it is the leftover of an interrupted build; it never counts
and the next build of that key wipes it. ``<images>/.locks/<key>.lock`` is an
fcntl lock so that of two concurrent builds of one key one builds and the other
waits and reuses the result (across threads and processes alike).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MARKER = "image.json"


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def dir(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> dict[str, Any] | None:
        """The marker's record if ``key`` is fully built and its files are still there."""
        try:
            record = json.loads((self.dir(key) / MARKER).read_text())
        except (OSError, ValueError):
            return None
        paths = [record.get("python", ""), *record.get("layers", [])]
        if not all(isinstance(p, str) and Path(p).exists() for p in paths):
            return None  # damaged by hand: rebuild rather than hand out missing layers
        return dict(record)

    @contextlib.contextmanager
    def locked(self, key: str, on_wait: Callable[[], None]) -> Iterator[None]:
        """Hold the build lock of ``key``; ``on_wait`` is called once if we must wait."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                on_wait()
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def fresh_dir(self, key: str) -> Path:
        """An empty directory for a build of ``key`` (call with the lock held)."""
        path = self.dir(key)
        self.discard(key)
        path.mkdir(parents=True)
        return path

    def discard(self, key: str) -> None:
        """Remove an unmarked (failed or interrupted) build of ``key``."""
        path = self.dir(key)
        if path.exists():
            # Rename first so a half-removed tree never sits under the key's name.
            trash = self.root / f".trash-{key[:16]}-{uuid.uuid4().hex[:6]}"
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def publish(self, key: str, record: dict[str, Any]) -> None:
        """Write the marker last, atomically: from now on ``key`` counts."""
        marker = self.dir(key) / MARKER
        tmp = marker.with_name(f".{MARKER}.{uuid.uuid4().hex[:6]}")
        with open(tmp, "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, marker)
