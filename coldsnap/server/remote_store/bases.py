"""The roots images are built on, through the shared store: debian_slim's bases and
add_python's Pythons (``<base dir>/<name>/``) and pulled registry images
(``<registry cache>/<digest>/``).

An image's record names files in them (its ``base``, its ``python``, add_python's
layer), but they live outside the image's dir, in host-wide caches: a host that
fetched the image, or a fleet's agent about to start its container on another
machine, may have none of them, and the container could not start (a debian_slim
base is a minute of debootstrap away, and a network). So the host that uploads an
image uploads the roots it names first, once each (``bases/<cache>/<name>.json``,
the manifest, written last), and a host that lacks one fetches it into a staging
dir beside its place and renames it there.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coldsnap.server.remote_store.bucket import Bucket, StoreUnavailable
from coldsnap.server.remote_store.chunks import CorruptChunk
from coldsnap.server.remote_store.manifest import Manifest
from coldsnap.server.remote_store.packs import PackIndex
from coldsnap.server.remote_store.trees import fetch_trees, store_trees

CACHES = ("base_dir", "registry_cache")
logger = logging.getLogger(__name__)


def base_manifest_name(cache: str, name: str) -> str:
    return f"bases/{cache}/{name}.json"


class RemoteBases:
    """This host's image roots in the shared store (see the docstring)."""

    def __init__(self, bucket: Bucket, caches: dict[str, Path], pool: ThreadPoolExecutor,
                 transfers: int, index: PackIndex) -> None:
        self.bucket = bucket
        self.caches = caches  # "base_dir" / "registry_cache" -> this host's dir
        self.pool = pool
        self.transfers = transfers
        self.index = index

    def roots_of(self, paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
        """(cache, root dir) of each path under one of the caches, each root once."""
        found: dict[Path, str] = {}
        for path in map(Path, paths):
            for cache, top in self.caches.items():
                if path != top and path.is_relative_to(top):
                    found.setdefault(top / path.relative_to(top).parts[0], cache)
        return [(cache, root) for root, cache in found.items()]

    def upload(self, paths: Iterable[str | Path]) -> None:
        """Put the roots ``paths`` lie in into the store, those it lacks. StoreUnavailable
        when it is down (the image's upload is retried, and this with it)."""
        for cache, root in self.roots_of(paths):
            name = base_manifest_name(cache, root.name)
            if not root.is_dir() or root.name.startswith(".") or self.bucket.exists(name):
                continue
            t0 = time.monotonic()
            files, locations = store_trees(self.bucket, {root.name: root}, self.pool,
                                           self.transfers, self.index, root.parent)
            manifest = Manifest(f"{cache}/{root.name}", "", files, {}, locations)
            self.bucket.put(name, manifest.to_json())  # last: now it is in the store
            logger.info("uploaded the image root %s to the store in %.1f s: %.1f MB", root,
                        time.monotonic() - t0, manifest.size_bytes / 1e6)

    def fetch_missing(self, paths: Iterable[str | Path]) -> list[Path]:
        """Bring the roots ``paths`` lie in that this host lacks from the store; those
        brought. One the store lacks, or can't give, is left out (the log says why):
        the container's start then reports the missing file."""
        fetched = []
        for cache, root in self.roots_of(paths):
            if root.exists():
                continue
            try:
                if self._fetch(cache, root):
                    fetched.append(root)
            except (StoreUnavailable, CorruptChunk, OSError, ValueError, KeyError) as exc:
                logger.warning("could not fetch the image root %s from the store: %s", root,
                               exc)
        return fetched

    def _fetch(self, cache: str, root: Path) -> bool:
        raw = self.bucket.get(base_manifest_name(cache, root.name))
        if raw is None:
            logger.warning("the image root %s is not in the store either", root)
            return False
        manifest = Manifest.from_json(raw)
        t0 = time.monotonic()
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = root.parent / f".fetch-{root.name[:24]}-{uuid.uuid4().hex[:6]}"
        staging.mkdir()
        try:
            read = fetch_trees(self.bucket, manifest, staging, self.pool)
            try:
                (staging / root.name).rename(root)
            except OSError:
                if not root.is_dir():  # else another server on this host was first
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("fetched the image root %s from the store: %.1f MB in %.0f ms", root,
                    read / 1e6, (time.monotonic() - t0) * 1000)
        return True
