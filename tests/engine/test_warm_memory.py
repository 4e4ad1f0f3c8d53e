"""The warm memory reserve: what it holds, gives back and takes back (real memory,
small sizes)."""

from __future__ import annotations

import time

from coldsnap.engine.warm_memory import BLOCK, WarmMemory


def _held_at_least(warm: WarmMemory, nbytes: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if warm.held_bytes >= nbytes:
            return True
        time.sleep(0.02)
    return False


def test_the_reserve_fills_gives_back_what_is_asked_and_refills_when_a_container_ends() -> None:
    warm = WarmMemory(4 * BLOCK >> 20)
    try:
        assert _held_at_least(warm, 4 * BLOCK)
        assert warm.release(BLOCK + 1) == 2 * BLOCK  # whole blocks, rounded up
        assert warm.held_bytes == 2 * BLOCK
        time.sleep(0.3)
        assert warm.held_bytes == 2 * BLOCK  # not taken back while boots may need it
        assert warm.release() == 2 * BLOCK
        assert warm.held_bytes == 0
        warm.refill()
        assert _held_at_least(warm, 4 * BLOCK)
        time.sleep(0.1)
        assert warm.held_bytes == 4 * BLOCK  # never more than asked for
    finally:
        warm.close()
    assert warm.held_bytes == 0


def test_without_a_size_nothing_is_held_and_releases_are_free() -> None:
    warm = WarmMemory(0)
    assert warm.release() == 0
    warm.refill()
    time.sleep(0.1)
    assert warm.held_bytes == 0
    warm.close()
