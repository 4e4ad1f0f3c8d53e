"""A built image from the shared store (remote_store/images.py), published in this
host's image store before any build of it runs.

The builder asks under the key's build lock: a fetched image is published like a
build of this host's own (its dir renamed into place, ``image.json`` written
last), and a host builds the image itself when the store has none, or when the
fetch fails (the store down, a damaged chunk): the log and the deploy's output
say which. A fleet's host agent asks before it starts a container whose image
files it lacks (``fetch_missing_images``): the image dir is at one path on every
host, so the control plane's paths name the files the agent fetches.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from coldsnap.engine.base import ContainerSpec
from coldsnap.server.images.runtime_layer import ensure_runtime_layer
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
            "this host.", logging.WARNING)
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
            "building it on this host.", logging.WARNING)
        store.discard(key)
        shutil.rmtree(staging, ignore_errors=True)
        return None
    say(progress, f"Fetched {label} from {remote.url}: it was built on another host.")
    return record


def say(progress: Progress, line: str, level: int = logging.INFO) -> None:
    """To the deploy's output and to the server's log."""
    logger.log(level, "%s", line)
    progress(line)


_KEY = re.compile(r"[0-9a-f]{64}")


def fetch_missing_images(remote: RemoteImages | None, spec: ContainerSpec) -> list[str]:
    """Bring the images whose files ``spec`` names and this host lacks (its layers, its
    venv's interpreter) from the store; the keys fetched. Files under no image key
    are left to the container's start to report."""
    if remote is None:
        return []
    store = ImageStore(remote.images)
    paths = [*spec.layers, *(Path(word) for word in spec.argv[:1])]
    # The roots outside the image's dir it was built on (remote_store/bases.py).
    remote.bases.fetch_missing([*paths, *([spec.base] if spec.base is not None else [])])
    wanted = sorted({part for path in paths if (part := _image_part(path, remote.images))})
    fetched = []
    for part in wanted:
        if part == "runtime":  # coldsnap's own files: made here, as the same version does
            ensure_runtime_layer(remote.images)
            continue
        with store.locked(part, lambda: None):
            if store.load(part) is None and fetch_image(
                    remote, store, part, f"image {part[:12]}", logger.info) is not None:
                fetched.append(part)
    return fetched


def _image_part(path: Path, images: Path) -> str:
    """The image key (or ``runtime``) of a missing file under ``images``; else ""."""
    if path.exists() or not path.is_relative_to(images) or path == images:
        return ""
    part = path.relative_to(images).parts[0]
    return part if part == "runtime" or _KEY.fullmatch(part) else ""
