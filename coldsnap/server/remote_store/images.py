"""Built images through the shared store (docs/store.md, "Images").

A host that built an image (``<images>/<key>/``: its venv and layer dirs, and the
record in ``image.json``) uploads it in the background: each top-level dir of
the key's directory as one tar stream (trees.py), chunked into the store's packs
beside the snapshots' chunks, then the manifest ``images/<key>.json``, last. A
host that needs an image it lacks fetches it before building it: the trees are
unpacked into a staging dir beside the image dir and handed back with the record,
whose paths are moved from the building host's dirs to this host's. The builder
publishes it under its lock (image.json written last), as a build of its own.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from coldsnap.server.remote_store.bases import CACHES, RemoteBases
from coldsnap.server.remote_store.bucket import Bucket, StoreUnavailable, StoreUrl
from coldsnap.server.remote_store.chunks import CorruptChunk
from coldsnap.server.remote_store.manifest import Manifest
from coldsnap.server.remote_store.packs import PackIndex, index_name
from coldsnap.server.remote_store.trees import fetch_trees, store_trees
from coldsnap.server.remote_store.upload import RETRY_FIRST_S, RETRY_MAX_S
from coldsnap.settings import Settings

IN_STORE = ".in-store"  # in a key's dir: the store has this image (uploaded or fetched)
MARKER = "image.json"  # the image store's record (server/images/store.py)
BUILD_LOG = "build.log"  # stays on the host that built the image
RECORD_PATHS = ("python", "base", "runtime")  # and each of "layers"
logger = logging.getLogger(__name__)


def image_manifest_name(key: str) -> str:
    return f"images/{key}.json"


class ImageFetchFailed(Exception):
    """The store has the image but it could not be brought here; the message says why."""


class RemoteImages:
    """This host's images in the shared store: uploads in the background, fetches."""

    def __init__(self, settings: Settings) -> None:
        self.url = StoreUrl.parse(settings.store_url)
        self.images = settings.images
        self.roots = {"images": str(settings.images), "base_dir": str(settings.base_dir),
                      "registry_cache": str(settings.registry_cache)}
        self.bucket = Bucket(self.url, settings.store_transfers)
        self.transfers = settings.store_transfers
        self._pool = ThreadPoolExecutor(self.transfers, thread_name_prefix="image-store")
        self.index = PackIndex()
        self.bases = RemoteBases(self.bucket, {c: Path(self.roots[c]) for c in CACHES},
                                 self._pool, self.transfers, self.index)
        self._jobs: queue.Queue[tuple[str, int]] = queue.Queue()
        self._thread = threading.Thread(target=self._uploads, name="image-upload", daemon=True)
        self._thread.start()

    def upload_unfinished(self) -> None:
        """Queue the images built here that are not in the store (a stop cut their
        uploads short, or the store was down)."""
        for marker in sorted(self.images.glob(f"*/{MARKER}")):
            if not marker.parent.name.startswith(".") and not (marker.parent /
                                                               IN_STORE).exists():
                self.upload_later(marker.parent.name)

    def upload_later(self, key: str) -> None:
        """Put the built image ``key`` into the store in the background."""
        self._jobs.put((key, 0))

    def fetch(self, key: str) -> tuple[Path, dict[str, Any]] | None:
        """The image ``key`` from the store, unpacked into a staging dir beside the
        image dir, with its record for this host's paths; None when the store has none.
        ImageFetchFailed saying why when it can't (nothing is left behind)."""
        staging = self.images / f".fetch-{key[:16]}-{uuid.uuid4().hex[:6]}"
        try:
            raw = self.bucket.get(image_manifest_name(key))
            if raw is None:
                return None
            manifest = Manifest.from_json(raw)
            t0 = time.monotonic()
            staging.mkdir(parents=True)
            read = fetch_trees(self.bucket, manifest, staging, self._pool)
            (staging / IN_STORE).touch()
            (staging / BUILD_LOG).write_text(f"image {key} was fetched from {self.url}: its "
                                             "build log is on the host that built it\n")
            record = self._relocated(manifest.meta)
        except CorruptChunk as exc:
            _remove(staging)
            self._forget(key, exc.pack)
            raise ImageFetchFailed(f"{exc}: the image in the store is damaged, deleted it "
                                   "there") from None
        except (StoreUnavailable, OSError, ValueError, KeyError) as exc:
            _remove(staging)
            raise ImageFetchFailed(str(exc)) from None
        logger.info("fetched image %s from %s: %.1f MB in %.0f ms", key[:12], self.url,
                    read / 1e6, (time.monotonic() - t0) * 1000)
        return staging, record

    def _relocated(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The stored record with the building host's dirs replaced by this host's (its
        paths name the key's dir, where the builder publishes the staging dir)."""
        moves = [(meta["roots"][name], mine) for name, mine in self.roots.items()]
        record = dict(meta["record"])
        for field in RECORD_PATHS:
            record[field] = _moved(str(record.get(field, "")), moves)
        record["layers"] = [_moved(str(path), moves) for path in record["layers"]]
        record["fetched_from"] = str(self.url)
        return record

    def _forget(self, key: str, pack: str | None) -> None:
        """Delete a damaged image's manifest and the damaged pack's index: the image
        this host builds instead is uploaded in its place, its chunks written anew."""
        try:
            self.bucket.delete(image_manifest_name(key))
            if pack is not None:
                self.index.forget_pack(pack)
                self.bucket.delete(index_name(pack))
        except StoreUnavailable as exc:
            logger.warning("could not delete the damaged image %s from %s: %s", key[:12],
                           self.url, exc)

    def _uploads(self) -> None:
        while True:
            key, attempts = self._jobs.get()
            try:
                self._attempt(key, attempts)
            except Exception:  # a bug must not end the thread: later images still go
                logger.exception("upload of image %s to %s failed", key[:12], self.url)

    def _attempt(self, key: str, attempts: int) -> None:
        try:
            self._upload(key)
        except StoreUnavailable as exc:
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** attempts)
            logger.warning("upload of image %s to %s failed (try %d), retrying in %.0f s: "
                           "%s", key[:12], self.url, attempts + 1, delay, exc)
            timer = threading.Timer(delay, self._jobs.put, [(key, attempts + 1)])
            timer.daemon = True  # a stop ends the wait; the next start uploads it
            timer.start()

    def _upload(self, key: str) -> None:
        folder = self.images / key
        try:
            record = json.loads((folder / MARKER).read_text())
        except (OSError, ValueError):
            logger.info("image %s was removed before its upload to %s", key[:12], self.url)
            return
        name = image_manifest_name(key)
        if self.bucket.exists(name):
            (folder / IN_STORE).touch()
            logger.info("image %s is in %s already", key[:12], self.url)
            return
        t0 = time.monotonic()
        self.bases.upload(record_paths(record))  # first: a host that fetches needs them
        trees = {p.name: p for p in folder.iterdir() if p.is_dir() and not
                 p.name.startswith(".")}
        files, locations = store_trees(self.bucket, trees, self._pool, self.transfers,
                                       self.index, self.images)
        meta = {"record": record, "roots": self.roots}
        manifest = Manifest(key, "", files, meta, locations)
        self.bucket.put(name, manifest.to_json())  # last: now the image is in the store
        (folder / IN_STORE).touch()
        logger.info("uploaded image %s to %s in %.1f s: %.1f MB in %d trees", key[:12],
                    self.url, time.monotonic() - t0, manifest.size_bytes / 1e6, len(files))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def record_paths(record: dict[str, Any]) -> list[str]:
    """The paths an image's record names (its base, Python, runtime and layers)."""
    named = [str(record.get(field) or "") for field in RECORD_PATHS]
    return [path for path in [*named, *map(str, record.get("layers", []))] if path]


def _moved(path: str, moves: list[tuple[str, str]]) -> str:
    for theirs, mine in moves:
        if theirs and (path == theirs or path.startswith(theirs.rstrip("/") + "/")):
            return mine + path[len(theirs):]
    return path


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def open_remote_images(settings: Settings) -> RemoteImages | None:
    """The shared store's images, or None without ``COLDSNAP_STORE_URL``."""
    if not settings.store_url:
        return None
    try:
        return RemoteImages(settings)
    except StoreUnavailable as exc:  # no boto3: `coldsnap serve` says so before this
        logger.warning("images are not shared through the store: %s", exc)
        return None
