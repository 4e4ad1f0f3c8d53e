"""Snapshot phases with a fixed memory layout, so that versions share pages.

Two snapshots of one function that differ by a line of code hold almost the same
memory, but only if the process was laid out the same way: with address space
randomization every pointer differs, and with Python's per-process hash seed
every dict and str hash does, so that nearly every page of a new version is new
(measured: >95% of the chunks of a one-line change). A snapshot phase with a
fixed layout runs without ASLR (``personality(ADDR_NO_RANDOMIZE)``, set by
nsinit) and with ``PYTHONHASHSEED`` derived from the function's app and name and a
secret: the store's (``layout-secret`` in the bucket, made once by the first host
that needs it), else this host's, so that knowing an endpoint's names does not give
its hash seed (with it, keys that collide in a dict are easy to make).

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
from collections.abc import Callable
from pathlib import Path

from coldsnap.settings import Settings

SECRET_OBJECT = "layout-secret"
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


def layout_secret(state_dir: Path, shared: Callable[[], str | None] | None) -> str:
    """The secret of the hash seeds: kept in ``state_dir`` once known; taken from the
    store (``shared``) when there is one, so that hosts share it; else made here."""
    path = state_dir / SECRET_OBJECT
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = None
    if shared is not None:
        try:
            secret = shared()
        except Exception as exc:  # the store is down: this host's own, dedupe suffers
            logger.warning("the store's layout secret could not be read (%s); this host "
                           "makes its own: its snapshots share fewer pages with other "
                           "hosts'", exc)
    secret = secret or secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret)
    return secret
