"""Snapshots shared by several hosts through an S3-compatible store (docs/store.md).

``RemoteSnapshots`` is what the boot policy (boot.py) asks: ``upload_later`` once a
snapshot was made and restored on this host, ``fetch`` when a boot finds no local
snapshot for its key. Both work in the local store's terms (engine/store.py): an
upload reads a published snapshot's directory, a fetch stages one and publishes
it, so the local checks apply to fetched snapshots as to dumped ones. With
``COLDSNAP_STORE_URL`` unset there is no ``RemoteSnapshots`` at all.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coldsnap.engine import Engine
from coldsnap.engine.base import SnapshotInfo
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.remote_store.bucket import Bucket, StoreUnavailable, StoreUrl
from coldsnap.server.remote_store.cache import ChunkCache
from coldsnap.server.remote_store.chunks import CorruptChunk
from coldsnap.server.remote_store.collector import collector_paused
from coldsnap.server.remote_store.fetch import Fetched, fetch_snapshot
from coldsnap.server.remote_store.layout import fixed_layout, store_secret
from coldsnap.server.remote_store.manifest import Manifest, manifest_name
from coldsnap.server.remote_store.packs import PackIndex, index_name
from coldsnap.server.remote_store.upload import Uploader, upload_snapshot
from coldsnap.settings import Settings

__all__ = ["FetchFailed", "Fetched", "RemoteSnapshots", "check_store_settings", "open_remote"]
# What the store's code imports, from coldsnap's cluster extra.
CLUSTER_MODULES = ("boto3", "pyfastcdc", "blake3", "zstandard")
logger = logging.getLogger(__name__)


class FetchFailed(Exception):
    """The store has the snapshot but it could not be brought here; the message says why."""


class RemoteSnapshots:
    """This host's side of the shared store: uploads in the background, fetches on demand."""

    def __init__(self, settings: Settings, store: SnapshotStore,
                 free_warm_memory: Callable[[], None] | None = None) -> None:
        self.url = StoreUrl.parse(settings.store_url)
        self.store = store
        self.free_warm_memory = free_warm_memory  # the engine's (Engine.free_warm_memory)
        self.bucket = Bucket(self.url, settings.store_transfers)
        self.cache = ChunkCache(settings.chunk_cache_path, settings.store_cache_mb * 1024 * 1024)
        self.transfers = settings.store_transfers
        self._pool = ThreadPoolExecutor(self.transfers, thread_name_prefix="store")
        self.index = PackIndex()  # the chunks the store holds, as far as uploads know
        self.uploader = Uploader(
            lambda path: upload_snapshot(self.bucket, path, self._pool, self.transfers,
                                         self.index),
            str(self.url))
        self.uploader.submit(self._not_uploaded())  # a stop may have cut uploads short

    def layout_secret(self) -> str:
        """The store's secret of fixed layouts' hash seeds (layout.py), made by the
        first host that asks; StoreUnavailable when the store can't be reached."""
        return store_secret(self.bucket)

    def upload_later(self, info: SnapshotInfo) -> None:
        """Put ``info`` into the store in the background (retried while it is down)."""
        self.uploader.submit([info.path])

    def fetch(self, key: str) -> Fetched | None:
        """Bring ``key``'s snapshot for this host key from the store into the local one;
        None when the store has none. FetchFailed saying why when it can't."""
        started = time.monotonic()
        try:
            raw = self.bucket.get(manifest_name(self.store.host_key, key))
            if raw is None:
                return None
            if self.free_warm_memory is not None:
                # The fetch writes the snapshot into the page cache and the restore
                # right after it reads it into new memory: twice its size, which on a
                # VM that hands free memory back is fast only where it is warm
                # (docs/warm-memory.md).
                self.free_warm_memory()
            with collector_paused():
                manifest = Manifest.from_json(raw)
                return fetch_snapshot(self.bucket, self.cache, self.store, manifest,
                                      self._pool, started)
        except CorruptChunk as exc:
            self._forget(key, exc.pack)
            raise FetchFailed(f"{exc}: the snapshot in the store is damaged, deleted it "
                              "there") from None
        except (StoreUnavailable, OSError, ValueError) as exc:
            raise FetchFailed(str(exc)) from None

    def _forget(self, key: str, pack: str | None) -> None:
        """Delete a damaged snapshot's manifest, and the index of the damaged pack: this
        host's own snapshot, uploaded once made, takes its place, its chunks written anew."""
        try:
            self.bucket.delete(manifest_name(self.store.host_key, key))
            if pack is not None:
                self.index.forget_pack(pack)
                self.bucket.delete(index_name(pack))
        except StoreUnavailable as exc:
            logger.warning("could not delete the damaged snapshot %s from %s: %s", key,
                           self.url, exc)

    def close(self) -> None:
        self.uploader.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _not_uploaded(self) -> list[Path]:
        """This host's snapshots that it made (not fetched) and that did not fail."""
        failed = self.store.failures()
        return [info.path for info in self.store.list()
                if info.host_key == self.store.host_key and info.key not in failed
                and not _fetched(info)]


def _fetched(info: SnapshotInfo) -> bool:
    try:
        return "fetched_from" in json.loads((info.path / "meta.json").read_text())
    except (OSError, ValueError):
        return True  # unreadable: not worth an upload


def open_remote(settings: Settings, engine: Engine) -> RemoteSnapshots | None:
    """The shared store of ``settings.store_url``, or None: none set, or an engine that
    takes no snapshots. ValueError or StoreUnavailable (missing boto3) saying what to fix."""
    if not settings.store_url or engine.store is None:
        return None
    return RemoteSnapshots(settings, engine.store, engine.free_warm_memory)


def check_store_settings(settings: Settings) -> None:
    """ValueError saying what to fix when the store's settings can't work (checked by
    `coldsnap serve` before anything starts)."""
    fixed_layout(settings)
    if not settings.store_url:
        return
    StoreUrl.parse(settings.store_url)
    missing = [name for name in CLUSTER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"COLDSNAP_STORE_URL={settings.store_url} needs {', '.join(missing)}: "
                         "install coldsnap's cluster extra (pip install 'coldsnap[cluster]'; "
                         "scripts/setup.sh does)")
