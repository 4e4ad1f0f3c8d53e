"""Deployed apps' sources through the shared store (docs/store.md, "App sources").

Each deploy of a new version puts its source at ``sources/<app>/<version>`` and
then, last, ``sources/<app>/current.json`` (the version, the app file's path and
the source's SHA-256), in the background: a deploy never waits for the store. A
server sharing the store that is asked for an app it has never deployed reads
``current.json`` and the source it names (``latest``) and deploys that version
itself: its images come from the store too (images.py), so the call is served
without the user deploying on this host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import queue
import threading
import time

from coldsnap.server.remote_store.bucket import Bucket, StoreUnavailable, StoreUrl
from coldsnap.settings import Settings

TRIES = 5  # puts of one deploy's source while the store is down: 2, 4, 8, 16 s apart
logger = logging.getLogger(__name__)


def source_name(app: str, version: str) -> str:
    return f"sources/{app}/{version}"


def current_name(app: str) -> str:
    return f"sources/{app}/current.json"


@dataclasses.dataclass(frozen=True)
class StoredSource:
    """An app's version as the store has it: what ``Deploys.deploy`` takes again."""

    app: str
    version: str
    filename: str
    source: bytes


class RemoteSources:
    """This server's deploys in the shared store, and those of the other servers."""

    def __init__(self, settings: Settings) -> None:
        self.url = StoreUrl.parse(settings.store_url)
        self.bucket = Bucket(self.url, 2)
        self._jobs: queue.Queue[StoredSource] = queue.Queue()  # in deploy order
        threading.Thread(target=self._uploads, name="source-upload", daemon=True).start()

    def upload_later(self, app: str, version: str, filename: str, source: bytes) -> None:
        """Put a deployed version's source into the store in the background."""
        self._jobs.put(StoredSource(app, version, filename, source))

    def latest(self, app: str) -> StoredSource | None:
        """The version of ``app`` last deployed by any server sharing the store; None
        when there is none, or the store can't be reached or holds a damaged copy."""
        try:
            raw = self.bucket.get(current_name(app))
            if raw is None:
                return None
            current = json.loads(raw)
            version, filename = str(current["version"]), str(current["filename"])
            source = self.bucket.get(source_name(app, version))
        except (StoreUnavailable, ValueError, KeyError, TypeError) as exc:
            logger.warning("reading the source of app %r from %s failed: %s", app, self.url,
                           exc)
            return None
        if source is None or hashlib.sha256(source).hexdigest() != current.get("sha256"):
            logger.warning("the source of app %r version %s in %s is missing or damaged: "
                           "not deploying it", app, version[:12], self.url)
            return None
        return StoredSource(app, version, filename, source)

    def _uploads(self) -> None:
        while True:
            stored = self._jobs.get()
            try:
                self._upload(stored)
            except Exception:  # a bug must not end the thread: later deploys still go
                logger.exception("storing the source of app %r in %s failed", stored.app,
                                 self.url)

    def _upload(self, stored: StoredSource) -> None:
        current = {"version": stored.version, "filename": stored.filename,
                   "sha256": hashlib.sha256(stored.source).hexdigest(),
                   "deployed_at": time.time()}
        for attempt in range(TRIES):
            try:
                self.bucket.put(source_name(stored.app, stored.version), stored.source)
                self.bucket.put(current_name(stored.app), json.dumps(current).encode())
            except StoreUnavailable as exc:
                logger.warning("storing the source of app %r version %s in %s failed (try "
                               "%d of %d): %s", stored.app, stored.version[:12], self.url,
                               attempt + 1, TRIES, exc)
                if attempt + 1 < TRIES:
                    time.sleep(2.0 * 2 ** attempt)
                continue
            logger.info("stored the source of app %r version %s in %s", stored.app,
                        stored.version[:12], self.url)
            return


def open_remote_sources(settings: Settings) -> RemoteSources | None:
    """The shared store's app sources, or None without ``COLDSNAP_STORE_URL``."""
    if not settings.store_url:
        return None
    try:
        return RemoteSources(settings)
    except StoreUnavailable as exc:  # no boto3: `coldsnap serve` says so before this
        logger.warning("app sources are not shared through the store: %s", exc)
        return None
