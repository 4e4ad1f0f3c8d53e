"""Image and snapshot filesystem layers under a container's root: one ext4 image each.

A container's root is an overlay whose bottom layer is the host's "/". The kernel
refuses (ELOOP) another lower layer on the same filesystem where one contains
the other, so each extra layer (image files, a snapshot's filesystem) needs a
filesystem of its own. Each is packed once into an ext4 image on disk
(``mkfs.ext4 -d``, which keeps whiteouts and overlay xattrs) and loop-mounted
read-only at ``<run dir>/layers/NAME``: nothing sits in RAM, and the images
outlive a server restart. Containers in a user namespace see a layer through an
idmapped view of that mount, ``NAME.idmapped`` (userns.py).

Not a read-only overlay per layer, stacked under the container's: CRIU can't
dump a process that maps a file of such a layer (a model loaded with mmap),
because the mapping names the inner overlay's mount, which the container's
mount namespace lacks ("Can't lookup mount").
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

from coldsnap.engine.userns import UserNamespace

BLOCK = 4096
IDMAPPED = ".idmapped"  # a layer's view for user namespaces, beside its mount
# Room for mkfs's metadata and a little slack; the image file is sparse.
FIXED_OVERHEAD = 16 << 20


class LayerError(OSError):
    """A layer could not be packed or mounted; the message has the tool's words."""


class LayerCache:
    """Mounted layers, made once per source dir and shared by the containers on them.

    An entry is named after the source's path *and* identity (inode, ctime), so a
    snapshot deleted and made again at the same path never gets the old entry.
    Containers hold references to the layers they mount: ``prune`` and ``forget``
    delete one only once no container uses it (its mount stays under the
    containers' roots until they leave, then goes).
    """

    def __init__(self, run_dir: Path, images_dir: Path,
                 userns: UserNamespace | None = None) -> None:
        self.mounts = run_dir / "layers"
        self.dir = images_dir  # NAME.ext4 and NAME.source (the source's path)
        self.userns = userns  # shows layers to user namespaces (NAME.idmapped), if any
        self._lock = threading.Lock()
        self._users: dict[str, int] = {}
        self._building: dict[str, threading.Lock] = {}
        self._doomed: set[str] = set()
        for path in (self.dir, self.mounts):
            path.mkdir(parents=True, exist_ok=True)
        self._clear_leftovers()

    def acquire(self, source: Path, idmapped: bool = False) -> Path:
        """The mounted layer of ``source`` (made now if needed), held until ``release``;
        ``idmapped``: its view with owners shifted into the user namespace's ids."""
        name = self._name(source)
        with self._lock:  # counted first, so prune and forget never delete it under us
            self._users[name] = self._users.get(name, 0) + 1
            building = self._building.setdefault(name, threading.Lock())
        target = self.mounts / name
        try:
            with building:  # of concurrent first users one builds, the others wait
                if not (self.dir / f"{name}.ext4").is_file():
                    self._pack(source, name)
                if not os.path.ismount(target):
                    target.mkdir(exist_ok=True)
                    _run(["mount", "-t", "ext4", "-o", "loop,ro,noload,nosuid,nodev",
                          str(self.dir / f"{name}.ext4"), str(target)], f"mounting layer {name}")
                if idmapped:
                    target = self._idmapped(target)
        except BaseException:
            self.release(target)
            raise
        return target

    def _idmapped(self, target: Path) -> Path:
        if self.userns is None:
            raise LayerError("an idmapped layer was asked for, but this cache has no user "
                             "namespace")
        view = target.with_name(target.name + IDMAPPED)
        if not os.path.ismount(view):
            self.userns.idmap(target, view)
        return view

    def release(self, layer: Path) -> None:
        name = layer.name.removesuffix(IDMAPPED)
        with self._lock:
            left = self._users.get(name, 0) - 1
            if left > 0:
                self._users[name] = left
                return
            self._users.pop(name, None)
            if name in self._doomed:
                self._delete(name)

    def forget(self, source: Path) -> None:
        try:
            name = self._name(source)
        except OSError:
            return
        with self._lock:
            self._drop(name)

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

    def close(self) -> None:
        """Unmount every layer; the images stay for the next server."""
        with self._lock:
            for target in self.mounts.iterdir():
                _unmount(target)

    def _name(self, source: Path) -> str:
        st = source.stat()
        identity = f"{source.resolve()}:{st.st_ino}:{st.st_ctime_ns}"
        return hashlib.sha256(identity.encode()).hexdigest()[:20]

    def _pack(self, source: Path, name: str) -> None:
        """``source`` as an ext4 image, published with a rename (never half-written)."""
        tmp = self.dir / f"._build-{name}-{uuid.uuid4().hex[:6]}.ext4"
        try:
            _run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-b", str(BLOCK),
                  "-N", str(_entries(source) + 64), "-d", str(source), str(tmp),
                  f"{_image_bytes(source) // 1024}k"], f"packing layer {source}")
            (self.dir / f"{name}.source").write_text(str(source.resolve()))
            os.rename(tmp, self.dir / f"{name}.ext4")
        finally:
            tmp.unlink(missing_ok=True)

    def _drop(self, name: str) -> None:
        if self._users.get(name):
            self._doomed.add(name)  # deleted by the last release
        else:
            self._delete(name)

    def _delete(self, name: str) -> None:
        self._doomed.discard(name)
        self._building.pop(name, None)
        _unmount(self.mounts / (name + IDMAPPED))
        _unmount(self.mounts / name)  # lazily: containers still on it keep it
        (self.dir / f"{name}.source").unlink(missing_ok=True)
        (self.dir / f"{name}.ext4").unlink(missing_ok=True)

    def _clear_leftovers(self) -> None:
        """A crashed server's mounts and half-built images, and what earlier
        versions kept (tmpfs copies in the run dir, hard-link trees on disk)."""
        for path in self.mounts.iterdir():
            if os.path.ismount(path):
                _unmount(path)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for path in self.dir.iterdir():
            if path.is_dir():  # trees of hard links an earlier version mounted
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.startswith("._"):
                path.unlink(missing_ok=True)


def _entries(source: Path) -> int:
    """Files, dirs and links under ``source``: the inodes the image needs."""
    return sum(1 + len(dirs) + len(files) for _, dirs, files in os.walk(source))


def _image_bytes(source: Path) -> int:
    """An image size that holds ``source``: its blocks, one per entry, and slack."""
    total = FIXED_OVERHEAD
    for root, dirs, files in os.walk(source):
        total += BLOCK * (1 + len(dirs))
        for name in files:
            with contextlib.suppress(OSError):
                size = os.lstat(os.path.join(root, name)).st_size
                total += -(-size // BLOCK) * BLOCK + BLOCK
    return total + total // 10


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise LayerError(f"{what} failed: {' '.join(argv[:1])}: {detail}")


def _unmount(target: Path) -> None:
    if os.path.ismount(target):
        # Detached: containers running on the layer keep it under their root.
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        target.rmdir()
