"""Bytes moved between this host and a snapshot store elsewhere (an S3 bucket), per
process: whatever fetches or uploads a snapshot counts it here, and each server's
``/metrics`` reports the totals (``coldsnap_store_bytes_total``, docs/metrics.md).

A process-wide tally, not a server's: the code that moves the bytes lives in the
engine, which knows nothing of servers (several servers in one process, as in tests,
report the same totals).
"""

from __future__ import annotations

import threading

FETCHED = "fetched"
UPLOADED = "uploaded"
DIRECTIONS = (FETCHED, UPLOADED)

_lock = threading.Lock()
_totals = dict.fromkeys(DIRECTIONS, 0)


def count_store_bytes(direction: str, n: int) -> None:
    """Add ``n`` bytes moved in ``direction`` (``"fetched"``: store -> host,
    ``"uploaded"``: host -> store)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"count_store_bytes: direction must be one of {', '.join(DIRECTIONS)}, "
                         f"not {direction!r}")
    if n < 0:
        raise ValueError(f"count_store_bytes: a byte count can't be negative ({n})")
    with _lock:
        _totals[direction] += n


def store_bytes() -> dict[str, int]:
    """The totals so far, by direction (a copy)."""
    with _lock:
        return dict(_totals)
