"""server/boot.py's snapshot policy: which keys restore, fall back or wait after failures."""

from __future__ import annotations

import time
from pathlib import Path

from coldsnap.engine import SnapshotInfo
from coldsnap.server.snapshot_keys import Claim, SnapshotKeys


class StoreEngine:
    """Just the engine calls SnapshotKeys makes: one stored snapshot, failure records."""

    name = "fake"
    host_key = "test-host"

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}

    def lookup(self, key: str) -> SnapshotInfo | None:
        return SnapshotInfo(key, self.host_key, Path("/nonexistent"), 1, 0.1, time.time())

    def mark_failed(self, key: str, reason: str) -> None:
        self.failed[key] = reason

    def failure(self, key: str) -> str | None:
        return self.failed.get(key)


def test_a_transient_restore_failure_pauses_restores_then_retries() -> None:
    engine, now = StoreEngine(), [1000.0]
    keys = SnapshotKeys(engine, clock=lambda: now[0])  # type: ignore[arg-type]
    assert keys.claim("k", 1) is Claim.RESTORE
    keys.mark_transient("k", "restore: criu restore timed out", retry_in_s=300)
    assert engine.failed == {}  # not failed for good: the snapshot is kept
    assert "transient" in (keys.transient_error("k") or "")
    now[0] += 299
    assert keys.claim("k", 1) is Claim.FALLBACK
    now[0] += 2
    assert keys.claim("k", 1) is Claim.RESTORE
    keys.restored("k")
    assert keys.transient_error("k") is None


def test_a_failed_key_stays_failed_until_its_record_is_deleted() -> None:
    engine = StoreEngine()
    keys = SnapshotKeys(engine)  # type: ignore[arg-type]
    keys.mark_failed("k", "restore: corrupt image")
    assert keys.claim("k", 1) is Claim.FALLBACK
    assert engine.failed["k"] == "restore: corrupt image"
    assert keys.failure("k") == "restore: corrupt image"
    engine.failed.clear()  # what the store's delete does
    assert keys.claim("k", 1) is Claim.RESTORE


class EmptyStore(StoreEngine):
    def lookup(self, key: str) -> SnapshotInfo | None:
        return None


def test_a_boot_waits_for_the_key_being_made_until_its_wait_runs_out() -> None:
    keys = SnapshotKeys(EmptyStore())  # type: ignore[arg-type]
    assert keys.claim("k", 1) is Claim.CREATE
    started = time.monotonic()
    assert keys.claim("k", 0.05) is Claim.WAITED_OUT
    assert time.monotonic() - started >= 0.05
    assert keys.claim("k", 0) is Claim.WAITED_OUT  # 0: don't wait at all
    keys.release("k")
    assert keys.claim("k", 0) is Claim.CREATE  # released without a snapshot: make it
