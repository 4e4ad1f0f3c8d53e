"""Snapshot phases with a fixed memory layout, so that versions share pages.

Two snapshots of one function that differ by a line of code hold almost the same
memory, but only if the process was laid out the same way: with address space
randomization every pointer differs, and with Python's per-process hash seed
every dict and str hash does, so that nearly every page of a new version is new
(measured: >95% of the chunks of a one-line change). A snapshot phase with a
fixed layout runs without ASLR (``personality(ADDR_NO_RANDOMIZE)``, set by
nsinit) and with ``PYTHONHASHSEED`` derived from the function's app and name and a
secret: the store's (``layout-secret`` in the bucket, made once by the first host
that needs it, with a conditional write so that hosts starting together agree; a
host checks the one it keeps against the store's at each start), else this host's
(provisional while the store can't be read: ``LayoutSecret`` asks again), so that
knowing an endpoint's names does not give its hash seed (with it, keys that collide
in a dict are easy to make).

What it costs: every restored copy of a snapshot shares its layout and seed
anyway; with a fixed layout all versions of a function share them too, and the
layout is the binaries' default one. ``COLDSNAP_SNAPSHOT_LAYOUT=random`` keeps
them random (and dedupe across versions low); docs/store.md says more.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from coldsnap.settings import Settings

if TYPE_CHECKING:
    from coldsnap.server.remote_store.bucket import Bucket

SECRET_OBJECT = "layout-secret"
# This host's own while the store's could not be read (LayoutSecret).
PROVISIONAL = "layout-secret.provisional"
RETRY_S = 60.0
# A store without conditional writes keeps the last writer's secret: how long hosts
# that found none at once take to write theirs, before each reads back the survivor.
SETTLE_S = 1.5
logger = logging.getLogger(__name__)

LAYOUTS = ("auto", "fixed", "random")


def fixed_layout(settings: Settings) -> bool:
    """Whether snapshot phases run with a fixed layout: ``fixed``, or ``auto`` with a
    shared store. ValueError naming the setting when it is none of ``LAYOUTS``."""
    layout = settings.snapshot_layout.strip().lower()
    if layout not in LAYOUTS:
        raise ValueError(f"COLDSNAP_SNAPSHOT_LAYOUT={settings.snapshot_layout!r} is not one "
                         f"of {', '.join(LAYOUTS)} (docs/store.md)")
    return layout == "fixed" or (layout == "auto" and bool(settings.store_url))


def hash_seed_env(app: str, tag: str, secret: str) -> dict[str, str]:
    """``PYTHONHASHSEED`` for the snapshot phase of ``app``'s function ``tag``."""
    digest = hashlib.sha256(f"{secret}\0{app}\0{tag}".encode()).digest()
    return {"PYTHONHASHSEED": str(int.from_bytes(digest[:4], "big"))}


def store_secret(bucket: Bucket) -> str:
    """The store's secret, made here when it has none; hosts that ask at once get the same
    one. StoreUnavailable when the store can't be reached."""
    secret = bucket.get(SECRET_OBJECT)
    if secret is None:
        mine = secrets.token_hex(16).encode()
        written = bucket.put_new(SECRET_OBJECT, mine)
        if written:
            return mine.decode()
        if written is None:  # no conditional writes: the last writer's survives
            bucket.put(SECRET_OBJECT, mine)
            time.sleep(SETTLE_S)
        secret = bucket.get(SECRET_OBJECT)
    return (secret or b"").decode().strip()


def layout_secret(state_dir: Path, shared: Callable[[], str | None] | None) -> str:
    """The secret of the hash seeds: the store's (``shared``) when there is one, so that
    hosts share it, kept in ``state_dir`` for when the store is down; else made here."""
    return _resolve(state_dir, shared)[0]


class LayoutSecret:
    """A server's ``layout_secret``. While the store could not be read it is a provisional
    one of this host's, kept apart (``PROVISIONAL``) so that it never shadows the
    store's: the store is asked again at each start and, at most every ``RETRY_S``,
    when a snapshot phase needs the secret."""

    def __init__(self, state_dir: Path, shared: Callable[[], str | None] | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._state_dir, self._shared, self._clock = state_dir, shared, clock
        self._lock = threading.Lock()
        self._secret, self._provisional = _resolve(state_dir, shared)
        self._asked = clock()

    def value(self) -> str:
        with self._lock:
            if self._provisional and self._clock() - self._asked >= RETRY_S:
                self._asked = self._clock()
                self._secret, self._provisional = _resolve(self._state_dir, self._shared)
                if not self._provisional:
                    logger.info("read the store's layout secret: later snapshots share "
                                "pages with other hosts' again")
            return self._secret


def _resolve(state_dir: Path, shared: Callable[[], str | None] | None) -> tuple[str, bool]:
    """(the secret, whether it is provisional: the store could not be read). The store's
    wins over a kept one: two hosts that made theirs at once agree from their next start."""
    path, provisional = state_dir / SECRET_OBJECT, state_dir / PROVISIONAL
    kept = _read(path)
    if shared is None:  # no store: this host's own, the provisional one if it made one
        return kept or _keep(path, _read(provisional) or secrets.token_hex(16)), False
    try:
        secret = shared()
    except Exception as exc:
        if kept:  # read from the store before: no worse than when it was last checked
            logger.info("the store's layout secret could not be read (%s); this host "
                        "keeps the one it read before", exc)
            return kept, False
        logger.warning("the store's layout secret could not be read (%s); this host uses "
                       "its own until the store answers: its snapshots share fewer pages "
                       "with other hosts'", exc)
        return _keep(provisional, _read(provisional) or secrets.token_hex(16)), True
    provisional.unlink(missing_ok=True)
    secret = secret or kept or secrets.token_hex(16)
    if kept and secret != kept:
        logger.warning("this host's layout secret differed from the store's (hosts that "
                       "first started together, or a store emptied since): it takes the "
                       "store's, so that its snapshots share pages with other hosts'; its "
                       "snapshots made before share fewer pages with new ones, and they "
                       "still restore")
    return _keep(path, secret), False


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _keep(path: Path, secret: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret)
    return secret
