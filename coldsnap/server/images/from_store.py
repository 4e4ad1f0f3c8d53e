"""A built image from the shared store (remote_store/images.py), published in this
host's image store before any build of it runs.

The builder asks under the key's build lock: a fetched image is published like a
build of this host's own (its dir renamed into place, ``image.json`` written
last), and a host builds the image itself when the store has none, or when the
fetch fails (the store down, a damaged chunk): the log and the deploy's output
say which.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from coldsnap.server.images.steps import Progress
from coldsnap.server.images.store import ImageStore
from coldsnap.server.remote_store.images import ImageFetchFailed, RemoteImages

logger = logging.getLogger(__name__)


def fetch_image(remote: RemoteImages | None, store: ImageStore, key: str, label: str,
                progress: Progress) -> dict[str, Any] | None:
    """The record of ``key`` fetched from the store and published here (call with the
    key's build lock held); None when this host must build it."""
    if remote is None:
        return None
    try:
        fetched = remote.fetch(key)
    except ImageFetchFailed as exc:
        say(progress, f"Fetching {label} from {remote.url} failed: {exc}; building it on "
            "this host.")
        return None
    if fetched is None:
        logger.info("%s is not in %s: building it on this host", label, remote.url)
        return None
    staging, record = fetched
    try:
        store.discard(key)
        os.rename(staging, store.dir(key))
        store.publish(key, record)
    except OSError as exc:
        say(progress, f"Publishing {label}, fetched from {remote.url}, failed: {exc}; "
            "building it on this host.")
        store.discard(key)
        shutil.rmtree(staging, ignore_errors=True)
        return None
    say(progress, f"Fetched {label} from {remote.url}: it was built on another host.")
    return record


def say(progress: Progress, line: str) -> None:
    """To the deploy's output and to the server's log."""
    logger.info("%s", line)
    progress(line)
