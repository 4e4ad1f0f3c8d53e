"""The warm memory reserve: what it holds, gives back and takes back (real memory,
small sizes)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from coldsnap.engine.warm_memory import (
    AUTO_MB,
    BLOCK,
    BLOCK_MB,
    WarmMemory,
    hands_memory_back,
    reserve_mb,
)


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


def _vm(root: Path, reporting: bool | None) -> Path:
    """A made-up /sys: page reporting built in, and a balloon that takes the reports
    (``reporting``), one that doesn't (False), or none (None)."""
    (root / "module/page_reporting/parameters").mkdir(parents=True)
    if reporting is not None:
        device = root / "bus/virtio/drivers/virtio_balloon/virtio0"
        device.mkdir(parents=True)
        (device / "features").write_text(("01100" + ("1" if reporting else "0")) + "0" * 58)
    return root


def test_auto_keeps_memory_warm_only_on_a_vm_that_hands_free_memory_back(
        tmp_path: Path) -> None:
    total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
    back = _vm(tmp_path / "back", reporting=True)
    assert hands_memory_back(back)
    assert reserve_mb("auto", back) == min(AUTO_MB, total_mb // 16) > 0
    assert reserve_mb(" AUTO ", back) == reserve_mb("auto", back)
    for keeps in (_vm(tmp_path / "no-reports", reporting=False),
                  _vm(tmp_path / "no-balloon", reporting=None), tmp_path / "bare-metal"):
        assert not hands_memory_back(keeps)
        assert reserve_mb("auto", keeps) == 0
    assert reserve_mb("0", back) == 0  # an operator's number wins either way
    assert reserve_mb("512", tmp_path / "bare-metal") == 512
    assert reserve_mb("5") == reserve_mb("8") == BLOCK_MB  # whole blocks, rounded up
    assert reserve_mb("100") == 104
    small = WarmMemory(5)
    small.close()
    assert small.target == 1  # never less than asked for


def test_a_reserve_of_more_than_half_the_host_is_refused() -> None:
    total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
    assert reserve_mb(str(total_mb // 2 // BLOCK_MB * BLOCK_MB)) > 0
    half = rf"more than half of this host's memory \({total_mb} MB\)"
    with pytest.raises(ValueError, match=half):
        reserve_mb(str(total_mb // 2 + 1))


@pytest.mark.parametrize("bad", ["-1", "1.5", "lots", ""])
def test_a_size_that_is_neither_a_number_nor_auto_says_what_it_may_be(bad: str) -> None:
    with pytest.raises(ValueError, match="COLDSNAP_WARM_MEMORY_MB=.*whole number of MB.*auto"):
        reserve_mb(bad)


def test_the_reserve_stops_growing_when_the_host_runs_short_of_memory(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from coldsnap.engine import warm_memory

    monkeypatch.setattr(warm_memory, "SPARE_FRACTION", 1.01)  # never enough to spare
    warm = WarmMemory(2 * BLOCK_MB)
    try:
        deadline = time.monotonic() + 10
        while "holding 0 MB of the 16 MB asked for" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.02)
        assert warm.held_bytes == 0
        assert "less than 101% of this host's memory is available" in caplog.text
    finally:
        warm.close()


def test_the_reserve_is_taken_back_at_idle_priority_a_while_after_a_boot_freed_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from coldsnap.engine import warm_memory

    monkeypatch.setattr(warm_memory, "RETAKE_AFTER_S", 0.5)
    warm = WarmMemory(2 * BLOCK_MB)
    try:
        assert _held_at_least(warm, 2 * BLOCK)
        assert warm._thread is not None and warm._thread.native_id is not None
        assert os.sched_getscheduler(warm._thread.native_id) == os.SCHED_IDLE
        warm.release()  # a boot, and no container ends after it
        assert warm.held_bytes == 0
        started = time.monotonic()
        assert _held_at_least(warm, 2 * BLOCK, timeout=10)
        assert time.monotonic() - started >= 0.4  # not at once: the boot may need it
    finally:
        warm.close()
