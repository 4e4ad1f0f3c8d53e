"""Whether a failed dump ran out of room in the snapshot store, and what it says then.

A dump needs about as much room as its processes hold in anonymous memory (CRIU
writes those pages) plus what they wrote to their filesystem (the snapshot's
``fs`` layer). That estimate is taken before the dump, which kills the tree; the
store's free space is read when the dump fails (to tell a full store from other
failures: CRIU often can't even log the ``ENOSPC`` into a full store) and again
once the half-written dump is deleted (what the message reports).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from coldsnap.engine.gpu import tree_pids
from coldsnap.engine.store import tree_size

# A store with less than this free when a dump fails was filled by the dump.
NEARLY_FULL_BYTES = 4 * 1024 * 1024
ENOSPC_TEXT = "No space left on device"
MB = 1_000_000


def estimate_dump_bytes(root: int, upper: Path) -> int:
    """Bytes a dump of the tree at ``root`` (writing ``upper``) needs, roughly; 0 if
    the tree is gone."""
    return sum(_resident_bytes(pid) for pid in tree_pids(root)) + tree_size(upper)


def _resident_bytes(pid: int) -> int:
    """What CRIU writes of ``pid``'s memory: its anonymous and shared resident pages."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    total = 0
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssShmem"):
            total += int(value.split()[0]) * 1024  # kB
    return total


def free_bytes(path: Path) -> int:
    """Bytes root may still write under ``path`` (the reserve included); -1 if unknown."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return -1
    return stat.f_bfree * stat.f_frsize


def ran_out_of_space(exc: BaseException, free_at_failure: int) -> bool:
    """Whether the dump that raised ``exc`` failed because the store filled up."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if ENOSPC_TEXT in str(exc):  # cp's stderr, CRIU's log tail
        return True
    return 0 <= free_at_failure < NEARLY_FULL_BYTES


def out_of_space_message(store: Path, free: int, needed: int) -> str:
    """What went wrong, by how much, and what to do."""
    if needed > free:
        need = f"the dump needed {needed / MB:.0f} MB"
    else:  # the estimate missed something (page cache, CRIU's own files)
        need = f"the dump needed more than that (its processes hold {needed / MB:.0f} MB)"
    return (f"no space left on the snapshot store: {max(free, 0) / MB:.0f} MB free, {need}; "
            f"free space in {store} (`coldsnap snapshots gc` deletes old snapshots): the key "
            "is tried again at a cold boot after a backoff")
