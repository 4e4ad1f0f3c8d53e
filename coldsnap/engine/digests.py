"""Digests of a snapshot's image files: taken once at publish, checked on every restore.

Sizes alone miss a page flipped in place; a digest of every byte does not. The
store records ``{file name: "sha256:<hex>"}`` in a snapshot's metadata
(``digest_files``); a restore checks them in a ``Verification`` thread that
runs beside CRIU, which reads the same files, so the pages are in the page
cache for both and the check costs the restore only what is left of it when
CRIU is done (the ``verify_s`` timing).

sha256 because the CPUs these servers run on hash it in hardware (SHA-NI: about
2 GB/s a core, faster than blake2b's 1.5 GB/s there) and ``hashlib`` lets go of
the GIL while it hashes.

Hashing 327 MB still takes ~190 ms on these machines, more than CRIU's restore
itself, so a file is hashed again only when it may have changed: ``VerifiedFiles``
remembers, in the server's memory, each file's stat stamp (device, inode, size,
mtime and ctime) when its bytes last matched. Any write to a file moves its ctime,
which nobody can set back, so an equal stamp means the same bytes as far as a
write goes; the first restore after a server start hashes everything, and
`coldsnap snapshots verify` always does (it is also the check for a disk that
changed bytes under an unchanged stamp).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from pathlib import Path

ALGORITHM = "sha256"
CHUNK = 1 << 20  # big enough that hashlib drops the GIL, small enough to stop promptly


@dataclasses.dataclass(frozen=True)
class Damage:
    """An image file that does not match the snapshot's metadata, and how."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"image file {self.file} {self.problem}"


class Cancelled(Exception):
    """The check was stopped before it finished (the restore it served gave up)."""


def file_digest(path: Path, stop: threading.Event | None = None) -> str:
    """``"sha256:<hex>"`` of the file's bytes; raises Cancelled once ``stop`` is set."""
    digest = hashlib.new(ALGORITHM)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
            if stop is not None and stop.is_set():
                raise Cancelled(str(path))
    return f"{ALGORITHM}:{digest.hexdigest()}"


def digest_files(directory: Path) -> dict[str, str]:
    """The digest of every file in ``directory`` (not below it), by name."""
    return {p.name: file_digest(p) for p in sorted(directory.iterdir()) if p.is_file()}


def check_sizes(images: Path, sizes: dict[str, int]) -> Damage | None:
    """The first file missing or of another size than recorded, or None (cheap: stats)."""
    for name, size in sizes.items():
        try:
            actual = (images / name).stat().st_size
        except OSError:
            return Damage(name, "is missing")
        if actual != size:
            return Damage(name, f"has {actual} bytes, {size} expected")
    return None


Stamp = tuple[int, int, int, int, int]


def file_stamp(path: Path) -> Stamp:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class VerifiedFiles:
    """The stamps of files whose bytes last matched their digests (see the module's
    docstring); thread-safe. An empty one makes every check hash everything."""

    def __init__(self) -> None:
        self._stamps: dict[str, Stamp] = {}
        self._lock = threading.Lock()

    def unchanged(self, path: Path) -> bool:
        try:
            stamp = file_stamp(path)
        except OSError:
            return False
        with self._lock:
            return self._stamps.get(str(path)) == stamp

    def remember(self, path: Path, stamp: Stamp) -> None:
        with self._lock:
            self._stamps[str(path)] = stamp

    def forget(self, directory: Path) -> None:
        """Drop what is known of the files under ``directory`` (a snapshot removed)."""
        prefix = str(directory) + os.sep
        with self._lock:
            for name in [n for n in self._stamps if n.startswith(prefix)]:
                del self._stamps[name]


def check_digests(images: Path, digests: dict[str, str],
                  stop: threading.Event | None = None,
                  verified: VerifiedFiles | None = None) -> Damage | None:
    """The first file whose bytes don't match its recorded digest, or None. With
    ``verified``, files whose stamp is unchanged since they last matched are skipped,
    and files that match now are remembered."""
    for name, expected in digests.items():
        path = images / name
        if verified is not None and verified.unchanged(path):
            continue
        try:
            stamp = file_stamp(path)
            actual = file_digest(path, stop)
        except OSError as exc:
            return Damage(name, f"can't be read ({exc.strerror or exc})")
        if actual != expected:
            return Damage(name, f"does not match its {ALGORITHM} digest (its bytes changed "
                          "after the snapshot was made)")
        if verified is not None and file_stamp(path) == stamp:  # not written meanwhile
            verified.remember(path, stamp)
    return None


class Verification:
    """``check_digests`` in a thread of its own, started now; ``result`` joins it.

    Example::

        check = Verification(images, info.extra["digests"])
        ...  # restore from the same files meanwhile
        damage = check.result()  # None: every file is as it was published
    """

    def __init__(self, images: Path, digests: dict[str, str],
                 verified: VerifiedFiles | None = None) -> None:
        self._images = images
        self._digests = digests
        self._verified = verified
        self._stop = threading.Event()
        self._damage: Damage | None = None
        self.hash_s = 0.0  # how long hashing took, overlapped or not
        self._thread = threading.Thread(target=self._run, name="snapshot-verify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            self._damage = check_digests(self._images, self._digests, self._stop,
                                         self._verified)
        except Cancelled:
            pass
        self.hash_s = time.monotonic() - t0

    def result(self) -> Damage | None:
        """Wait for the check; the damaged file, or None when all match."""
        self._thread.join()
        return self._damage

    def cancel(self) -> None:
        """Stop hashing soon (the restore failed for a reason of its own)."""
        self._stop.set()
