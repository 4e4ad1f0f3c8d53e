"""A volume's files, reached from the server without leaving the volume's directory.

Containers write volumes too, as root of their namespace: one could swap a
directory for a symlink to ``/etc`` between a check of a path and its use, or
leave a FIFO where a download would block. So every path is walked one
component at a time from the volume's own directory with ``O_NOFOLLOW`` (a
symlink anywhere on the way is refused, never followed), and only regular
files are read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coldsnap.server.errors import ApiError
from coldsnap.wire.errors import BAD_REQUEST, NOT_FOUND

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def parts_of(rel: str) -> list[str]:
    """``/a/b`` or ``a/b`` as its components; ``..`` is refused."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ApiError(BAD_REQUEST, f"path {rel!r} has '..': name a path inside the volume")
    return parts


@contextlib.contextmanager
def open_dir(root: Path, parts: list[str], rel: str, create: bool = False) -> Iterator[int]:
    """An fd of the directory ``root/parts`` reached without following a symlink
    (made, with ``create``)."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise ApiError(NOT_FOUND, f"the volume has no {rel!r}") from None
            except (NotADirectoryError, OSError) as exc:
                raise ApiError(BAD_REQUEST, f"{rel!r}: {part!r} is not a directory (a "
                               f"symlink is never followed): {exc.strerror}") from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def lstat_at(dir_fd: int, name: str, rel: str) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise ApiError(NOT_FOUND, f"the volume has no {rel!r}") from None


def read(root: Path, rel: str) -> bytes:
    parts = parts_of(rel)
    if not parts:
        raise ApiError(BAD_REQUEST, "the volume's root is a directory; name a file")
    with open_dir(root, parts[:-1], rel) as parent:
        info = lstat_at(parent, parts[-1], rel)
        if not stat.S_ISREG(info.st_mode):
            raise ApiError(BAD_REQUEST, f"{rel!r} is a {_kind(info.st_mode)}, not a file")
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=parent)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped meanwhile
                raise ApiError(BAD_REQUEST, f"{rel!r} is not a file")
            return handle.read()


def write(root: Path, rel: str, data: bytes, mode: int) -> int:
    """Write ``data`` to ``rel`` (its directories made); atomic; returns its size."""
    parts = parts_of(rel)
    if not parts:
        raise ApiError(BAD_REQUEST, "the volume's root is a directory; name a file path")
    with open_dir(root, parts[:-1], rel, create=True) as parent:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode):
                raise ApiError(BAD_REQUEST, f"{rel!r} is a directory; name a file path")
        tmp = f".{parts[-1]}.{time.monotonic_ns()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode & 0o777, dir_fd=parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                os.fchmod(handle.fileno(), mode & 0o777)
            os.replace(tmp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=parent)
            raise
    return len(data)


def remove(root: Path, rel: str, recursive: bool) -> None:
    parts = parts_of(rel)
    if not parts:
        raise ApiError(BAD_REQUEST, "can't remove the volume's root; delete the volume with "
                       "`coldsnap volume delete NAME`")
    with open_dir(root, parts[:-1], rel) as parent:
        if not stat.S_ISDIR(lstat_at(parent, parts[-1], rel).st_mode):
            os.unlink(parts[-1], dir_fd=parent)
        elif not recursive:
            raise ApiError(BAD_REQUEST, f"{rel!r} is a directory: pass recursive=True "
                           "(`coldsnap volume rm -r`) to remove it")
        else:
            shutil.rmtree(parts[-1], dir_fd=parent)  # fd-based: never follows a symlink


def entries(root: Path, rel: str, recursive: bool) -> list[dict[str, Any]]:
    """The entries under ``rel`` (itself, if it is no directory), paths from the root."""
    parts = parts_of(rel)
    base = "/" + "/".join(parts)
    if parts:
        with open_dir(root, parts[:-1], rel) as parent:
            info = lstat_at(parent, parts[-1], rel)
            if not stat.S_ISDIR(info.st_mode):
                return [_entry(base, info)]
    found = []
    with open_dir(root, parts, rel) as top:
        for dirpath, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=top):
            prefix = base.rstrip("/") + "/" + dirpath.removeprefix(".").strip("/")
            for name in sorted(dirnames + filenames):
                with contextlib.suppress(FileNotFoundError):
                    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    found.append(_entry(f"{prefix.rstrip('/')}/{name}", info))
            if not recursive:
                break
    return sorted(found, key=lambda e: e["path"])


def _entry(path: str, info: os.stat_result) -> dict[str, Any]:
    return {"path": path, "type": _kind(info.st_mode), "size": info.st_size,
            "mtime": info.st_mtime}


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "file" if stat.S_ISREG(mode) else "special file"
