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
"""

from __future__ import annotations

import dataclasses
import hashlib
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


def check_digests(images: Path, digests: dict[str, str],
                  stop: threading.Event | None = None) -> Damage | None:
    """The first file whose bytes don't match its recorded digest, or None."""
    for name, expected in digests.items():
        try:
            actual = file_digest(images / name, stop)
        except OSError as exc:
            return Damage(name, f"can't be read ({exc.strerror or exc})")
        if actual != expected:
            return Damage(name, f"does not match its {ALGORITHM} digest (its bytes changed "
                          "after the snapshot was made)")
    return None


class Verification:
    """``check_digests`` in a thread of its own, started now; ``result`` joins it.

    Example::

        check = Verification(images, info.extra["digests"])
        ...  # restore from the same files meanwhile
        damage = check.result()  # None: every file is as it was published
    """

    def __init__(self, images: Path, digests: dict[str, str]) -> None:
        self._images = images
        self._digests = digests
        self._stop = threading.Event()
        self._damage: Damage | None = None
        self.hash_s = 0.0  # how long hashing took, overlapped or not
        self._thread = threading.Thread(target=self._run, name="snapshot-verify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            self._damage = check_digests(self._images, self._digests, self._stop)
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
