"""Preparing a process's memory for a fast restore.

CRIU restores anonymous memory by reading the pages file into freshly mapped
regions; on 4 KiB pages every page is a fault, and that dominates the restore
of a large heap. Marking the big anonymous regions MADV_HUGEPAGE before the
dump makes CRIU recreate them with the same advice, so the restore faults in
2 MiB pages instead (where transparent huge pages are at least in "madvise"
mode, the kernel's default).
"""

from __future__ import annotations

import ctypes

MADV_HUGEPAGE = 14
HUGE = 2 << 20


def advise_hugepages(min_bytes: int = 4 * HUGE) -> int:
    """madvise(MADV_HUGEPAGE) every private anonymous rw region of at least ``min_bytes``.

    Returns how many bytes were advised; failures are ignored (an optimisation only).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    advised = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            perms = fields[1]
            path = fields[5] if len(fields) > 5 else ""
            if perms[:2] != "rw" or perms[3] != "p" or path not in ("", "[heap]"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            # Align inwards to whole huge pages; the kernel only backs those with THP.
            start = (start + HUGE - 1) & ~(HUGE - 1)
            end &= ~(HUGE - 1)
            if end - start >= min_bytes and libc.madvise(start, end - start, MADV_HUGEPAGE) == 0:
                advised += end - start
    return advised
