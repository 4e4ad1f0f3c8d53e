"""Deployed apps' sources through the shared store (docs/store.md, "App sources").

Each deploy of a new version puts its source at ``sources/<app>/<version>`` and
then, last, ``sources/<app>/current.json`` (the version, the app file's path, the
source's SHA-256 and when this host deployed it), in the background: a deploy
never waits for the store. A server sharing the store that is asked for an app it
has never deployed reads ``current.json`` and the source it names (``latest``)
and deploys that version itself: its images come from the store too (images.py),
so the call is served without the user deploying on this host.

While the store can't be reached, a source's upload is tried again for as long as
the server runs, as a snapshot's is (upload.py): the first retry after
``RETRY_FIRST_S``, then twice as long each time, up to ``RETRY_MAX_S``; other
hosts deploy the version the store names meanwhile. Each app has at most one
upload waiting: a newer deploy replaces an older one's, so ``current.json`` ends
up naming the version this host deployed last. At start (``resubmit``) a server
queues again the current version of each app it has deployed whose source the
store lacks, as a stop or a crash before the store answered leaves it. A late
write (a retry, or one of an earlier run) replaces ``current.json`` only when that
is missing or names a version deployed before this host's: another host may have
deployed a newer one meanwhile, and the store is never rolled back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from coldsnap.server.remote_store.bucket import Bucket, StoreUnavailable, StoreUrl
from coldsnap.server.remote_store.upload import RETRY_FIRST_S, RETRY_MAX_S
from coldsnap.settings import Settings

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


@dataclasses.dataclass(frozen=True)
class _Upload:
    stored: StoredSource
    deployed_at: float  # Unix seconds of this host's deploy: current.json's deployed_at
    earlier_run: bool = False  # queued at start: the store may have it already
    attempts: int = 0
    due: float = 0.0  # monotonic

    @property
    def late(self) -> bool:
        """Whether another host may have deployed a newer version since."""
        return self.earlier_run or self.attempts > 0


class RemoteSources:
    """This server's deploys in the shared store, and those of the other servers."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.url = StoreUrl.parse(settings.store_url)
        self.bucket = Bucket(self.url, 2)
        self._clock = clock
        self._pending: dict[str, _Upload] = {}  # app -> its one upload waiting
        self._cond = threading.Condition()
        self._busy = False
        threading.Thread(target=self._run, name="source-upload", daemon=True).start()

    def upload_later(self, app: str, version: str, filename: str, source: bytes) -> None:
        """Put a version deployed just now into the store in the background."""
        self._queue(_Upload(StoredSource(app, version, filename, source), time.time()))

    def resubmit(self, app: str, version: str, filename: str, source: bytes,
                 deployed_at: float) -> None:
        """Put the current version of an app this server deployed at ``deployed_at`` (Unix
        seconds) in an earlier run into the store, if the store lacks its source."""
        self._queue(_Upload(StoredSource(app, version, filename, source), deployed_at,
                            earlier_run=True))

    def idle(self) -> bool:
        """True when no upload waits or runs (tests wait for it)."""
        with self._cond:
            return not self._pending and not self._busy

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

    def _queue(self, job: _Upload) -> None:
        with self._cond:  # replaces a waiting upload of an older version of the app
            self._pending[job.stored.app] = job
            self._cond.notify_all()

    def _next(self) -> _Upload:
        with self._cond:
            while True:
                now = self._clock()
                due = [job for job in self._pending.values() if job.due <= now]
                if due:
                    del self._pending[due[0].stored.app]
                    self._busy = True
                    return due[0]
                wait = min((job.due - now for job in self._pending.values()), default=None)
                self._cond.wait(wait)

    def _run(self) -> None:
        while True:
            job = self._next()
            try:
                self._attempt(job)
            except Exception:  # a bug must not end the thread: later deploys still go
                logger.exception("storing the source of app %r in %s failed",
                                 job.stored.app, self.url)
            finally:
                with self._cond:
                    self._busy = False

    def _attempt(self, job: _Upload) -> None:
        stored = job.stored
        try:
            self._store(job)
        except StoreUnavailable as exc:
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** job.attempts)
            logger.warning("storing the source of app %r version %s in %s failed (try %d), "
                           "retrying in %.0f s; other hosts deploy the version the store "
                           "names until then: %s", stored.app, stored.version[:12],
                           self.url, job.attempts + 1, delay, exc)
            with self._cond:
                if stored.app not in self._pending:  # else a newer deploy replaced it
                    self._pending[stored.app] = dataclasses.replace(
                        job, attempts=job.attempts + 1, due=self._clock() + delay)
                    self._cond.notify_all()

    def _store(self, job: _Upload) -> None:
        stored = job.stored
        name = source_name(stored.app, stored.version)
        if job.earlier_run and self.bucket.exists(name):
            return  # stored then, or this host deployed it from the store
        self.bucket.put(name, stored.source)
        newer = self._newer_current(job) if job.late else None
        if newer is not None:
            logger.info("stored the source of app %r version %s in %s; its current.json "
                        "names version %s, deployed later on another host: left as is",
                        stored.app, stored.version[:12], self.url,
                        str(newer.get("version"))[:12])
            return
        current = {"version": stored.version, "filename": stored.filename,
                   "sha256": hashlib.sha256(stored.source).hexdigest(),
                   "deployed_at": job.deployed_at}
        self.bucket.put(current_name(stored.app), json.dumps(current).encode())
        logger.info("stored the source of app %r version %s in %s", stored.app,
                    stored.version[:12], self.url)

    def _newer_current(self, job: _Upload) -> dict[str, Any] | None:
        """The store's current.json of the app when it names a version deployed after
        ``job``'s (one that can't be read counts as older: it is replaced)."""
        raw = self.bucket.get(current_name(job.stored.app))
        if raw is None:
            return None
        try:
            current = json.loads(raw)
            deployed_at = float(current["deployed_at"])
        except (ValueError, KeyError, TypeError):
            return None
        return current if deployed_at > job.deployed_at else None


def open_remote_sources(settings: Settings) -> RemoteSources | None:
    """The shared store's app sources, or None without ``COLDSNAP_STORE_URL``."""
    if not settings.store_url:
        return None
    try:
        return RemoteSources(settings)
    except StoreUnavailable as exc:  # no boto3: `coldsnap serve` says so before this
        logger.warning("app sources are not shared through the store: %s", exc)
        return None
