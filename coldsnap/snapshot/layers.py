"""Image and snapshot filesystem layers under a container's root, without copies.

A container's root is an overlay whose bottom layer is the host's "/". The kernel
refuses (ELOOP) another lower layer on the same filesystem where one contains
the other, so each extra layer (image files, a snapshot's filesystem) gets a
superblock of its own: a read-only overlay at ``<run dir>/layers/NAME`` over
hard links to the layer's files, which the container's overlay stacks on (two
levels, the kernel's limit). Whiteouts pass up as xattr whiteouts (Linux 6.7+).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path


class LayerCache:
    """Lower layers as read-only overlays of their own, made once per source dir.

    Each layer gets a superblock of its own (a read-only overlay at
    ``<run dir>/layers/NAME``; the container's overlay may stack on it) whose
    files are hard links to the source's, kept on disk in ``links_dir``: no data
    is copied and none sits in RAM, and deleting a snapshot unlinks only the
    store's names, so its running copies keep their files.

    An entry is named after the source's path *and* identity (inode, ctime), so a
    snapshot deleted and made again at the same path never gets the old entry.
    Containers hold references to the layers they mount: ``prune`` and ``forget``
    delete one only once no container uses it.
    """

    def __init__(self, run_dir: Path, links_dir: Path) -> None:
        self.mounts = run_dir / "layers"
        self.dir = links_dir  # NAME/ (the links) and NAME.source (the source's path)
        self._empty = self.mounts / ".empty"  # an overlay without upper needs two lowers
        self._lock = threading.Lock()
        self._users: dict[str, int] = {}
        self._building: dict[str, threading.Lock] = {}
        self._doomed: set[str] = set()
        self._trash: list[Path] = []  # links of deleted layers, removed outside the lock
        for path in (self.dir, self._empty):
            path.mkdir(parents=True, exist_ok=True)
        self._clear_leftovers()

    def acquire(self, source: Path) -> Path:
        """The mounted layer of ``source`` (made now if needed), held until ``release``."""
        name = self._name(source)
        with self._lock:  # counted first, so prune and forget never delete it under us
            self._users[name] = self._users.get(name, 0) + 1
            building = self._building.setdefault(name, threading.Lock())
        target = self.mounts / name
        try:
            with building:  # of concurrent first users one builds, the others wait
                if not (self.dir / name).is_dir():
                    self._link(source, name)
                if not os.path.ismount(target):
                    target.mkdir(exist_ok=True)
                    _mount_layer(self.dir / name, self._empty, target)
        except BaseException:
            self.release(target)
            raise
        return target

    def release(self, layer: Path) -> None:
        with self._lock:
            left = self._users.get(layer.name, 0) - 1
            if left > 0:
                self._users[layer.name] = left
                return
            self._users.pop(layer.name, None)
            if layer.name in self._doomed:
                self._delete(layer.name)
        self._empty_trash()

    def forget(self, source: Path) -> None:
        try:
            name = self._name(source)
        except OSError:
            return
        with self._lock:
            self._drop(name)
        self._empty_trash()

    def prune(self) -> None:
        """Drop layers whose source is gone or was replaced."""
        with self._lock:
            for marker in self.dir.glob("*.source"):
                name = marker.name.removesuffix(".source")
                try:
                    current = self._name(Path(marker.read_text()))
                except OSError:
                    current = ""
                if current != name:
                    self._drop(name)
        self._empty_trash()

    def close(self) -> None:
        """Unmount every layer; the links stay for the next server."""
        with self._lock:
            for marker in self.dir.glob("*.source"):
                _unmount(self.mounts / marker.name.removesuffix(".source"))

    def _name(self, source: Path) -> str:
        st = source.stat()
        identity = f"{self.dir}:{source.resolve()}:{st.st_ino}:{st.st_ctime_ns}"
        return hashlib.sha256(identity.encode()).hexdigest()[:20]

    def _link(self, source: Path, name: str) -> None:
        tmp = self.dir / f"._build-{name}-{uuid.uuid4().hex[:6]}"
        try:
            if subprocess.run(["cp", "-al", str(source), str(tmp)], capture_output=True).returncode:
                shutil.rmtree(tmp, ignore_errors=True)  # another filesystem: copy to disk
                subprocess.run(["cp", "-a", str(source), str(tmp)], check=True)
            _expose_whiteouts(tmp)
            (self.dir / f"{name}.source").write_text(str(source.resolve()))
            os.rename(tmp, self.dir / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _drop(self, name: str) -> None:
        if self._users.get(name):
            self._doomed.add(name)  # deleted by the last release
        else:
            self._delete(name)

    def _delete(self, name: str) -> None:
        self._doomed.discard(name)
        self._building.pop(name, None)
        _unmount(self.mounts / name)
        (self.dir / f"{name}.source").unlink(missing_ok=True)
        trash = self.dir / f"._trash-{name}-{uuid.uuid4().hex[:6]}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.dir / name, trash)
            self._trash.append(trash)

    def _empty_trash(self) -> None:
        with self._lock:
            trash, self._trash = self._trash, []
        for path in trash:
            shutil.rmtree(path, ignore_errors=True)

    def _clear_leftovers(self) -> None:
        """A crashed server's mounts, half-built and half-deleted links, and the
        layer copies older versions kept on the run dir's tmpfs."""
        for marker in self.dir.glob("*.source"):
            _unmount(self.mounts / marker.name.removesuffix(".source"))
        for path in self.dir.glob("._*"):
            shutil.rmtree(path, ignore_errors=True)
        for marker in self.mounts.glob("*.source"):
            if not os.path.ismount(copy := self.mounts / marker.name.removesuffix(".source")):
                shutil.rmtree(copy, ignore_errors=True)
            marker.unlink()


def _mount_layer(links: Path, empty: Path, target: Path) -> None:
    from coldsnap.snapshot.nsinit import mount

    # No upperdir: read-only. userxattr: it reads only user.overlay.* xattrs, so the
    # trusted.overlay.* ones (opaque dirs, whiteouts) pass up to the container's overlay.
    mount("overlay", str(target), "overlay", 0, f"userxattr,lowerdir={links}:{empty}")


def _unmount(target: Path) -> None:
    if os.path.ismount(target):
        # Detached: containers running on the layer keep it under their root.
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        target.rmdir()


def _expose_whiteouts(links: Path) -> None:
    """Turn the whiteouts (0/0 devices) in ``links`` into xattr whiteouts.

    The layer's own overlay would take a device whiteout for itself and hide it
    from the container's overlay. An empty file marked trusted.overlay.whiteout in
    a dir marked trusted.overlay.opaque "x" passes up (kernel 6.7+). Only our
    links change: the file replaces our link, and cp made the dirs.
    """
    found = subprocess.run(
        ["find", str(links), "-type", "c", "-print0"], capture_output=True, check=True
    ).stdout
    for path in (Path(os.fsdecode(raw)) for raw in found.split(b"\0") if raw):
        if os.lstat(path).st_rdev != 0:
            continue  # a device node
        with contextlib.suppress(OSError):
            if os.getxattr(path.parent, "trusted.overlay.opaque") == b"y":
                continue  # the dir hides all below it anyway
        path.unlink()
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.setxattr(path, "trusted.overlay.whiteout", b"y")
        os.setxattr(path.parent, "trusted.overlay.opaque", b"x")
