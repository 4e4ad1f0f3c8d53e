"""Finding the Python of an unpacked image, without running anything of the image.

An image's programs are not run on the host to learn about them: the image may
be built for another CPU, and its code is not trusted. Instead:

1. the interpreter is the first ``python3`` (then ``python``) in the image's
   ``PATH`` directories, symlinks followed inside the root filesystem (an
   absolute link target is read relative to the image's root, never the host's);
2. its version is what CPython itself uses to find its standard library: the
   ``lib/pythonX.Y/os.py`` landmark under the interpreter's prefix (the parent
   of its ``bin`` directory). Where the resolved file is named ``pythonX.Y``
   and that landmark exists, the name decides; a single landmark decides
   otherwise; the name alone is the last resort. This holds for Debian's
   ``/usr/bin/python3 -> python3.11``, the official images' ``/usr/local``
   builds, Alpine's and conda's layouts alike.

Example::

    found = find_python(Path("/cache/ab12/rootfs"), "/usr/local/bin:/usr/bin")
    found.path, found.version     # ('/usr/local/bin/python3', '3.11')
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from pathlib import Path, PurePosixPath

from coldsnap.server.images.steps import DEFAULT_PATH, BuildError
from coldsnap.wire.bases import DEBIAN_SUITES, available_pythons

NAMES = ("python3", "python")
MAX_LINKS = 40  # as the kernel's own limit on symlinks in one lookup
_VERSIONED = re.compile(r"python(\d+)\.(\d+)")


@dataclasses.dataclass(frozen=True)
class ImagePython:
    """A Python interpreter inside an image: its path there and its ``X.Y`` version."""

    path: str
    version: str | None

    def version_tuple(self) -> tuple[int, int] | None:
        if self.version is None:
            return None
        major, minor = self.version.split(".")
        return int(major), int(minor)


def find_python(rootfs: Path, path_env: str | None) -> ImagePython | None:
    """The image's Python as its ``PATH`` finds it, or None if it has none."""
    dirs = [d for d in (path_env or DEFAULT_PATH).split(":") if d.startswith("/")]
    for name in NAMES:
        for directory in dirs:
            inside = str(PurePosixPath(directory) / name)
            target = resolve_inside(rootfs, inside)
            if target is None or not _is_executable_file(rootfs, target):
                continue
            return ImagePython(inside, python_version(rootfs, target))
    return None


def resolve_inside(rootfs: Path, path: str) -> str | None:
    """``path`` with every symlink followed as the image would, or None if it dangles.

    The result is an absolute path inside the image; ``..`` and absolute link
    targets never lead out of ``rootfs``.
    """
    parts = [p for p in PurePosixPath(path).parts if p != "/"]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        host = rootfs.joinpath(*done, part)
        try:
            mode = host.lstat().st_mode
        except OSError:
            return None
        if not stat.S_ISLNK(mode):
            done.append(part)
            continue
        hops += 1
        if hops > MAX_LINKS:
            return None
        link = os.readlink(host)
        if link.startswith("/"):
            done = []
        parts = [p for p in PurePosixPath(link).parts if p != "/"] + parts
    return "/" + "/".join(done)


def python_version(rootfs: Path, target: str) -> str | None:
    """The ``X.Y`` of the interpreter at ``target`` (an image path), by its landmarks."""
    prefix = PurePosixPath(target).parent.parent
    landmarks = set()
    libdir = rootfs / str(prefix).lstrip("/") / "lib"
    if libdir.is_dir():
        for entry in libdir.iterdir():
            match = _VERSIONED.fullmatch(entry.name)
            if match and (entry / "os.py").is_file():
                landmarks.add(f"{match[1]}.{match[2]}")
    named = _VERSIONED.fullmatch(PurePosixPath(target).name)
    by_name = f"{named[1]}.{named[2]}" if named else None
    if by_name and (by_name in landmarks or not landmarks):
        return by_name
    if len(landmarks) == 1:
        return landmarks.pop()
    return by_name


def _is_executable_file(rootfs: Path, target: str) -> bool:
    try:
        st = (rootfs / target.lstrip("/")).lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


ADDED_PREFIX = "/opt/coldsnap"  # add_python's Pythons live in pythonX.Y below it
MINIMUM = (3, 11)  # coldsnap's runtime runs in the image's Python (pyproject's requires-python)


class NoUsablePython(BuildError):
    """The image has no Python that coldsnap can run functions in; the message says what works."""


def added_python(python_version: str) -> str:
    """Where ``add_python=python_version`` puts its interpreter in an image
    (add_python.py makes it): ``/opt/coldsnap/pythonX.Y/bin/pythonX.Y``."""
    return f"{ADDED_PREFIX}/python{python_version}/bin/python{python_version}"


def image_python(ref: str, found: ImagePython | None, add_python: str | None) -> ImagePython:
    """The Python that runs functions in the image ``ref``, or NoUsablePython saying why.

    With ``add_python`` it is the one coldsnap adds (Modal's
    ``Image.from_registry(tag, add_python="3.11")``), whatever the image has: like
    Modal, the added Python is used even where the image has one of its own.
    """
    works = (
        "What works: an image that has Python {min} or newer on its PATH (e.g. "
        "'python:3.11-slim' or 'python:3.12-slim'), Image.from_registry(tag, "
        "add_python=...) with {added}, or Image.debian_slim(python_version=...)."
    ).format(min=".".join(map(str, MINIMUM)), added=available_pythons())
    if add_python is not None:
        if add_python not in DEBIAN_SUITES:
            raise NoUsablePython(
                f"Image.from_registry({ref!r}, add_python={add_python!r}): coldsnap can add "
                f"Python {available_pythons()}, not {add_python!r}. Choose one of those.")
        return ImagePython(added_python(add_python), add_python)
    if found is None:
        raise NoUsablePython(
            f"the image {ref} has no python3 or python in the directories of its PATH, so "
            f"coldsnap can't run functions in it. {works}"
        )
    version = found.version_tuple()
    if version is None or version < MINIMUM:
        shown = found.version or "of unknown version (no lib/pythonX.Y/os.py beside it)"
        raise NoUsablePython(
            f"the image {ref} has Python {shown} at {found.path}; coldsnap needs "
            f"{'.'.join(map(str, MINIMUM))} or newer. {works}"
        )
    return found
