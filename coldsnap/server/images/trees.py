"""Root filesystem trees on disk: slimming a fresh Debian tree, measuring one, and
removing a half-built one without ever following a mount out of it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from coldsnap.engine.leftovers import mounts_under

logger = logging.getLogger(__name__)

# What Debian's own slim container images leave out, here for the packages an
# apt_install adds later too: documentation (but not its copyright files), manual
# pages and translations.
DPKG_EXCLUDES = """\
# coldsnap debian_slim: no documentation, manual pages or translations
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""
EXCLUDED_DIRS = ("usr/share/man", "usr/share/groff", "usr/share/info", "usr/share/lintian")


def slim(rootfs: Path, sources_list: str) -> None:
    """Make a fresh debootstrap tree a base image: no docs, no apt caches or lists
    (an apt_install step runs ``apt-get update`` first), pip allowed to install
    system-wide as in python:*-slim, and apt pointed at the suite and its updates."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/coldsnap-slim").write_text(DPKG_EXCLUDES)
    for name in EXCLUDED_DIRS:
        _empty(rootfs / name)
    _empty(rootfs / "usr/share/locale", keep=("locale.alias",))
    _remove_docs(rootfs / "usr/share/doc")
    _empty(rootfs / "var/cache/apt", keep=("archives",))
    _empty(rootfs / "var/cache/apt/archives", keep=("partial", "lock"))
    _empty(rootfs / "var/lib/apt/lists", keep=("partial", "lock"))
    # PEP 668's marker makes `pip install` refuse outside a venv; Debian's python3 in
    # a container image of its own is the case the PEP allows removing it for.
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    (rootfs / "etc/apt/sources.list").write_text(sources_list)
    (rootfs / "etc/hostname").write_text("localhost\n")  # debootstrap copied the host's


def _empty(directory: Path, keep: tuple[str, ...] = ()) -> None:
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _remove_docs(doc: Path) -> None:
    if not doc.is_dir():
        return
    for package in doc.iterdir():
        if package.is_dir() and not package.is_symlink():
            _empty(package, keep=("copyright",))
        elif package.name != "copyright":
            package.unlink()


def tree_bytes(root: Path) -> int:
    """Disk space of the tree, as ``du -s`` counts it (hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            info = os.lstat(os.path.join(directory, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total + os.lstat(root).st_blocks * 512


def discard(directory: Path) -> None:
    """Remove a half-built tree. Mounts inside it are detached first; if one stays,
    the tree stays too (removing it would reach into what is mounted there).

    A killed builder's children may still write for a moment: removal is retried.
    """
    for point in mounts_under(directory):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
    if left := mounts_under(directory):
        logger.error("left %s in place: %s still mounted inside it", directory, left[0])
        return
    for _ in range(50):
        shutil.rmtree(directory, ignore_errors=True)
        if not directory.exists():
            return
        time.sleep(0.1)
    logger.warning("could not remove the half-built base %s", directory)
