"""Containers' writable disks: one small ext4 filesystem per container, on disk.

A container writes into its overlay's upper dir, and that dir lives on a
filesystem of its own: a sparse ext4 image file under ``<state dir>/disks``,
loop-mounted under the run dir. Its size is the container's ``ephemeral_disk``:
a write past it fails with ENOSPC inside the container, and what it wrote lands
in that file, never in the host's RAM (the run dir's tmpfs holds only mount
points). The loop device does direct I/O, so the written pages are cached once,
by the container's ext4 (and charged to the container's memory cgroup).

Project quotas on one shared filesystem would be cheaper, but the kernels this
runs on lack them (no CONFIG_QFMT_V2, no CONFIG_XFS_QUOTA).

Making a disk costs ~40 ms (mkfs, losetup, mount): too much for a ~100 ms restore.
A thread keeps spares of each size asked for lately, mounted at ``<run
dir>/disks/NAME``; a container takes one with a bind mount onto its own dir (and
the spare's own mount goes): two system calls.

After a SIGKILL the mounts are under the run dir (the leftover sweep unmounts
them, and each loop device, set to clear itself, goes with its last mount), and
the next engine that owns the run dir deletes the image files (``clear``).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

from coldsnap.engine.nsinit import MNT_DETACH, MS_BIND, mount

# Spares kept per size, and how many sizes (the most recently asked) get spares.
SPARES = 2
SIZES_KEPT = 4
# Below this much free space a disk counts as full: ext4 refuses a write a few
# blocks before it is at zero.
FULL_BELOW = 1 << 20

logger = logging.getLogger(__name__)
_libc = ctypes.CDLL(None, use_errno=True)


class DiskError(OSError):
    """A disk could not be made; the message has the tool's words."""


def size_words(size_mb: int) -> str:
    """``10 GiB`` for whole GiB, else ``300 MiB``."""
    return f"{size_mb // 1024} GiB" if size_mb % 1024 == 0 else f"{size_mb} MiB"


def full_words(path: Path, size_mb: int) -> str | None:
    """The words for a full disk if the filesystem of ``path`` is (nearly) full, else None."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize >= FULL_BELOW:
        return None
    return (f"no space left in the container's disk (limit {size_words(size_mb)}): "
            "raise ephemeral_disk=")


class DiskPool:
    """Spare disks by size, and the attaching of one to a container's dir."""

    def __init__(self, images: Path, run_dir: Path, spares: int = SPARES) -> None:
        self.images = images
        self.mounts = run_dir / "disks"
        self.spares = spares
        for path in (self.images, self.mounts):
            path.mkdir(parents=True, exist_ok=True)
        self._ready: dict[int, collections.deque[tuple[Path, Path]]] = {}
        self._sizes: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self._filler: threading.Thread | None = None

    def clear(self) -> None:
        """Delete what a killed engine on this run dir left (its mounts are swept)."""
        for path in self.images.iterdir():
            path.unlink(missing_ok=True)
        for path in self.mounts.iterdir():
            _drop_mount(path)
            shutil.rmtree(path, ignore_errors=True)

    def attach(self, size_mb: int, target: Path, name: str) -> None:
        """Mount a fresh disk of ``size_mb`` MiB at ``target``; its image is ``name.img``."""
        spare = self._take(size_mb) or self._make(size_mb)
        mount_point, image = spare
        try:
            target.mkdir(exist_ok=True)
            mount(str(mount_point), str(target), "", MS_BIND)
        except BaseException:
            image.unlink(missing_ok=True)
            raise
        finally:
            _drop_mount(mount_point)  # the bind mount holds the filesystem now
        os.rename(image, self.images / f"{name}.img")

    def delete(self, name: str) -> None:
        """Delete the image of a container's disk once it is unmounted (its space goes
        when the last mount does)."""
        (self.images / f"{name}.img").unlink(missing_ok=True)

    def image_of(self, name: str) -> Path:
        return self.images / f"{name}.img"

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            spares = [s for ready in self._ready.values() for s in ready]
            self._ready.clear()
        if self._filler is not None:
            self._filler.join(30)
        for mount_point, image in spares:
            _drop_mount(mount_point)
            image.unlink(missing_ok=True)

    def _take(self, size_mb: int) -> tuple[Path, Path] | None:
        with self._cond:
            self._sizes[size_mb] = None
            self._sizes.move_to_end(size_mb)
            while len(self._sizes) > SIZES_KEPT:
                old, _ = self._sizes.popitem(last=False)
                for mount_point, image in self._ready.pop(old, ()):
                    _drop_mount(mount_point)
                    image.unlink(missing_ok=True)
            ready = self._ready.get(size_mb)
            spare = ready.popleft() if ready else None
            if self._filler is None and self.spares > 0:
                self._filler = threading.Thread(target=self._fill, daemon=True,
                                                name="disk-spares")
                self._filler.start()
            self._cond.notify_all()
        return spare

    def _fill(self) -> None:
        """Keep ``spares`` disks of each recent size ready until closed."""
        while True:
            with self._cond:
                while not self._closed and not (size := self._wanted()):
                    self._cond.wait()
                if self._closed:
                    return
            try:
                spare = self._make(size)
            except DiskError as exc:
                logger.warning("could not make a spare container disk: %s", exc)
                with self._cond:
                    self._sizes.pop(size, None)  # the next container asks again
                continue
            with self._cond:
                if self._closed or size not in self._sizes:
                    _drop_mount(spare[0])
                    spare[1].unlink(missing_ok=True)
                else:
                    self._ready.setdefault(size, collections.deque()).append(spare)

    def _wanted(self) -> int:
        """A size short of spares (0: none)."""
        for size in reversed(self._sizes):
            if len(self._ready.get(size, ())) < self.spares:
                return size
        return 0

    def _make(self, size_mb: int) -> tuple[Path, Path]:
        """A new ext4 disk of ``size_mb`` MiB, mounted: (mount point, image file)."""
        name = f"spare-{uuid.uuid4().hex[:10]}"
        image, mount_point = self.images / f"{name}.img", self.mounts / name
        try:
            with open(image, "wb") as file:
                file.truncate(size_mb << 20)  # sparse: it takes only what is written
            # No journal: the disk is thrown away with its container, crash or not.
            # Inode tables are left unwritten (lazy_itable_init, noinit_itable).
            _run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0", "-b", "4096",
                  "-E", "lazy_itable_init=1,nodiscard", str(image)])
            device = _run(["losetup", "--find", "--show", "--direct-io=on",
                           "--sector-size", "4096", str(image)])
            try:
                mount_point.mkdir()
                mount(device, str(mount_point), "ext4", 0, "noinit_itable")
            finally:
                # Mounted, the device only clears itself once the last mount goes.
                subprocess.run(["losetup", "-d", device], capture_output=True, check=False)
        except BaseException:
            _drop_mount(mount_point)
            image.unlink(missing_ok=True)
            raise
        return mount_point, image


def _run(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiskError(f"making a container disk failed: {argv[0]}: {exc}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise DiskError(f"making a container disk failed: {argv[0]}: {detail}")
    return result.stdout.strip()


def _drop_mount(path: Path) -> None:
    """Unmount ``path`` lazily (a container still on it keeps it) and remove the dir."""
    _libc.umount2(str(path).encode(), MNT_DETACH)  # fails harmlessly when not a mount
    with contextlib.suppress(OSError):
        path.rmdir()
