"""Memory kept warm for restores, on VMs that hand freed memory back.

A VM whose kernel reports free pages to its hypervisor (virtio-balloon free page
reporting, as on Firecracker) gives free blocks of memory (2 MB here) back about two
seconds after they were freed, and the next touch of such memory faults in the host too.
Measured on this project's VMs: touching 347 MB that had been free for three
seconds took 0.9-1.2 s; right after another process freed 694 MB it took 0.02-0.05 s.
A restore touches its whole snapshot at once (CRIU reads every page into fresh
memory), where a plain boot spreads its allocations over seconds of imports.

``WarmMemory`` holds ``COLDSNAP_WARM_MEMORY_MB`` of touched anonymous memory in
blocks of 8 MB. ``release()`` frees them just before a container starts: the
kernel hands recently freed pages out first, so the new memory is warm. The
reserve is taken back in the background right after a container ends
(``refill``: its memory was just freed, so that is warm and cheap to take), or
once nothing released any for ``RETAKE_AFTER_S``. It is memory the host can't use
for anything else, so ``auto`` (the default, ``reserve_mb``) holds it only on a VM
that hands free memory back (docs/warm-memory.md).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import threading
import time
from pathlib import Path

BLOCK = 8 << 20  # a multiple of what free page reporting hands back (2 MB here)
BLOCK_MB = BLOCK >> 20
# After a release, the reserve is taken back once no boot released any for this long
# (a boot is over by then, and memory freed that long ago is being handed back).
RETAKE_AFTER_S = 5.0
# ``auto``'s reserve: what a fetch (page cache) and the restore right after it (new
# memory) of a 350 MB snapshot touch, with room; at most a sixteenth of the host.
AUTO_MB = 1024
REPORTING_FEATURE = 5  # VIRTIO_BALLOON_F_REPORTING: the balloon takes reported free pages
# The reserve stops growing while less than this share of the host's memory is
# available: it is for restores, never worth what the host's other processes need.
SPARE_FRACTION = 0.15
logger = logging.getLogger(__name__)


class WarmMemory:
    """``mb`` of touched memory, released on demand and taken back when quiet.

    Example::

        warm = WarmMemory(1024)
        warm.release(350 << 20)  # the next 350 MB anyone allocates are warm
        warm.close()
    """

    def __init__(self, mb: int) -> None:
        self.target = -(-max(0, mb) // BLOCK_MB)  # blocks, rounded up
        self._blocks: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self._released_at = 0.0
        self._refill = True  # take it now, not after RETAKE_AFTER_S
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        if self.target:
            self._thread = threading.Thread(target=self._keep, name="warm-memory",
                                            daemon=True)
            self._thread.start()

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return len(self._blocks) * BLOCK

    def release(self, nbytes: int | None = None) -> int:
        """Free ``nbytes`` of the reserve (all of it with None); returns the bytes freed."""
        with self._lock:
            count = len(self._blocks) if nbytes is None else min(
                len(self._blocks), -(-nbytes // BLOCK))
            freed, self._blocks = self._blocks[:count], self._blocks[count:]
            self._released_at = time.monotonic()
            self._refill = False
        for block in freed:
            block.close()
        if freed:
            self._wake.set()
        return len(freed) * BLOCK

    def refill(self) -> None:
        """Take the reserve back now (a container ended: its memory is free and warm)."""
        with self._lock:
            self._refill = True
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.release()

    def _keep(self) -> None:
        """Take the reserve back, block by block, once nothing released any for a while
        (a release in the middle stops it: the blocks taken go with that release). The
        thread runs at idle priority: touching memory the VM handed back costs ~2 s of a
        core per GB, which it takes only from cores nothing else wants."""
        with contextlib.suppress(OSError, AttributeError):  # AttributeError: not Linux
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # this thread only
        while not self._closed:
            quiet_for = time.monotonic() - self._released_at
            if not self._refill and quiet_for < RETAKE_AFTER_S:
                self._wake.wait(RETAKE_AFTER_S - quiet_for)
                self._wake.clear()
                continue
            if not self._take_one():
                self._wake.wait()
                self._wake.clear()

    def _take_one(self) -> bool:
        """Touch one more block into the reserve; False when it is full (or closed)."""
        with self._lock:
            if self._closed or len(self._blocks) >= self.target:
                return False
            started = self._released_at
        if _available_share() < SPARE_FRACTION:
            logger.warning("keeping warm memory for restores: less than %d%% of this host's "
                           "memory is available; holding %d MB of the %d MB asked for",
                           SPARE_FRACTION * 100, self.held_bytes >> 20, self.target * BLOCK_MB)
            return False
        try:
            block = mmap.mmap(-1, BLOCK, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            with open("/dev/zero", "rb", buffering=0) as zero:
                # Every page touched by the kernel, in a system call: the faults of cold
                # memory (up to ~60 ms a block) never hold the GIL the boots need.
                zero.readinto(block)
        except (OSError, ValueError) as exc:  # no memory to spare: hold what we have
            logger.warning("keeping warm memory for restores: %s; holding %d MB", exc,
                           self.held_bytes >> 20)
            return False
        with self._lock:
            if self._released_at == started and not self._closed:
                self._blocks.append(block)
                return True
        block.close()  # released meanwhile: this block is warm for that release
        return True



def reserve_mb(setting: str, sys_root: Path = Path("/sys")) -> int:
    """``COLDSNAP_WARM_MEMORY_MB``'s reserve in MB, in whole blocks: a number rounded up
    to one; ``auto``: ``AUTO_MB`` (at most a sixteenth of the host's memory) on a VM
    that hands free memory back to its hypervisor, else 0. ValueError saying what it
    may be: not a whole number, or more than half of the host's memory."""
    text = setting.strip().lower()
    total_mb = _total_mb()
    if text == "auto":
        if not hands_memory_back(sys_root):
            return 0
        return min(AUTO_MB, total_mb // 16) // BLOCK_MB * BLOCK_MB
    if not text.isdigit():
        raise ValueError(f"COLDSNAP_WARM_MEMORY_MB={setting!r}: use a whole number of MB, "
                         "0 or more (0: off), or auto (on where this VM hands free memory "
                         "back)")
    if int(text) > total_mb // 2:
        raise ValueError(f"COLDSNAP_WARM_MEMORY_MB={setting!r} is more than half of this "
                         f"host's memory ({total_mb} MB): the reserve is for restores, "
                         "twice the largest snapshot is plenty (docs/warm-memory.md)")
    return -(-int(text) // BLOCK_MB) * BLOCK_MB


def _total_mb() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20


def _available_share() -> float:
    """MemAvailable over MemTotal (/proc/meminfo); 1.0 when it can't be read."""
    try:
        fields = dict(line.split(":", 1) for line in
                      Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return int(fields["MemAvailable"].split()[0]) / int(fields["MemTotal"].split()[0])
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        return 1.0


def hands_memory_back(sys_root: Path = Path("/sys")) -> bool:
    """Whether this kernel reports free memory to a hypervisor: free page reporting is
    built in and a virtio balloon that takes the reports is bound to its driver."""
    if not (sys_root / "module/page_reporting").is_dir():
        return False
    for device in (sys_root / "bus/virtio/drivers/virtio_balloon").glob("virtio*"):
        try:
            features = (device / "features").read_text().strip()
        except OSError:
            continue
        if len(features) > REPORTING_FEATURE and features[REPORTING_FEATURE] == "1":
            return True
    return False
