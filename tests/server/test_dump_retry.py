"""A dump that fails for a passing cause is tried again later, never marked failed:
the backoff schedule (doubling to a cap), what claims do meanwhile, what
`snapshots ls` shows, and what clears it. An injected clock; no CRIU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.engine import Container, DumpFailed, SnapshotInfo
from coldsnap.server.boot import Booter
from coldsnap.server.dump_retry import DumpRetries, duration
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.snapshot_keys import Claim, SnapshotKeys
from coldsnap.server.snapshots import SnapshotAdmin
from coldsnap.server.state import StateDB
from coldsnap.server.worker import Worker
from coldsnap.settings import Settings
from tests.server.test_snapshot_failures import StoreEngine
from tests.server.test_snapshot_policy import FailingEngine, _serves, square  # noqa: F401

KEY = "0123abcd-square"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_backoff_doubles_per_consecutive_failure_up_to_the_cap() -> None:
    clock = Clock()
    retries = DumpRetries(clock, first_s=60, max_s=3600)
    delays = [retries.failed(KEY, "dump: criu dump timed out") for _ in range(8)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert not retries.due(KEY)
    clock.now += 3599
    assert not retries.due(KEY)
    clock.now += 1
    assert retries.due(KEY)
    assert retries.clear(KEY)  # a dump worked: the count starts again
    assert retries.failed(KEY, "dump: killed") == 60
    assert retries.due("another-key")  # keys are apart


def test_the_error_says_it_is_transient_and_when_the_next_try_is() -> None:
    clock = Clock()
    retries = DumpRetries(clock, first_s=60, max_s=3600)
    retries.failed(KEY, "dump: criu dump was killed by signal 9 (exit -9)")
    retries.failed(KEY, "dump: criu dump was killed by signal 9 (exit -9)")
    assert retries.error(KEY) == ("dump: criu dump was killed by signal 9 (exit -9) "
                                  "(transient: next try in 2 min)")
    clock.now += 61
    assert str(retries.error(KEY)).endswith("(transient: next try in 59 s)")
    clock.now += 59
    assert str(retries.error(KEY)).endswith("(transient: next try at the next cold boot)")
    assert [duration(s) for s in (0.2, 59.5, 60, 61, 3600)] == [
        "1 s", "60 s", "1 min", "2 min", "60 min"]


@pytest.fixture
def keys_and_admin(tmp_path: Path) -> Iterator[tuple[SnapshotKeys, SnapshotAdmin, Clock]]:
    clock = Clock()
    engine = StoreEngine(tmp_path / "snapshots")
    db = StateDB(tmp_path / "state.db")
    db.note_snapshot_key(KEY, "app", "v" * 64, "square")
    keys = SnapshotKeys(engine, clock=clock, dump_retry_s=60, dump_retry_max_s=3600)
    yield keys, SnapshotAdmin(Settings(state_dir=tmp_path), engine, db, keys), clock
    db.close()


def test_claims_fall_back_during_the_backoff_and_create_after_it(
    keys_and_admin: tuple[SnapshotKeys, SnapshotAdmin, Clock]
) -> None:
    keys, admin, clock = keys_and_admin
    assert keys.claim(KEY, 1) is Claim.CREATE
    keys.dumps.failed(KEY, "dump: no space left on the snapshot store: 3 MB free, "
                           "the dump needed 80 MB")
    keys.release(KEY)
    assert keys.claim(KEY, 1) is Claim.FALLBACK
    [row] = admin.ls()
    assert (row["key"], row["status"], row["app"], row["tag"]) == (KEY, "retrying", "app",
                                                                   "square")
    assert row["last_error"] == ("dump: no space left on the snapshot store: 3 MB free, the "
                                 "dump needed 80 MB (transient: next try in 1 min)")
    assert keys.failure(KEY) is None  # nothing permanent: no record in the store
    clock.now += 60
    assert keys.claim(KEY, 1) is Claim.CREATE
    keys.release(KEY)


def test_rm_and_a_permanent_failure_clear_the_backoff(
    keys_and_admin: tuple[SnapshotKeys, SnapshotAdmin, Clock]
) -> None:
    keys, admin, _ = keys_and_admin
    keys.dumps.failed(KEY, "dump: criu dump timed out after 120s and was killed")
    assert admin.rm(KEY) == {"snapshot_removed": False, "failure_cleared": True}
    assert keys.claim(KEY, 1) is Claim.CREATE  # tried again at once
    keys.release(KEY)
    keys.dumps.failed(KEY, "dump: criu dump timed out after 120s and was killed")
    keys.mark_failed(KEY, "dump: criu dump failed (exit 1)")
    [row] = admin.ls()
    assert (row["status"], row["last_error"]) == ("failed", "dump: criu dump failed (exit 1)")


class TransientDumpEngine(FailingEngine):
    """Its dumps fail like a SIGKILLed CRIU: transiently."""

    def checkpoint(self, container: Container, key: str,
                   labels: dict[str, str] | None = None,
                   warnings: list[dict[str, str]] | None = None) -> SnapshotInfo:
        self.checkpoints += 1
        container.kill()
        raise DumpFailed("criu dump was killed by signal 9 (exit -9)", transient=True)


def test_a_transient_dump_failure_falls_back_and_records_nothing_permanent(
    square: FunctionSpec, tmp_path: Path  # noqa: F811
) -> None:
    engine = TransientDumpEngine("dump", tmp_path)
    db = StateDB(tmp_path / "state.db")
    clock = Clock()
    booter = Booter(Settings(state_dir=tmp_path, boot_timeout_s=60), engine, db,
                    note=lambda app, line, level, log: None)
    booter.keys = SnapshotKeys(engine, clock=clock, dump_retry_s=60, dump_retry_max_s=3600)
    lines: list[str] = []

    def attach(container: Container) -> Worker:
        return Worker(container, log_line=lambda _w, line: lines.append(line))

    try:
        first = booter.boot(square, attach)
        assert first.kind == "fallback" and engine.checkpoints == 1
        assert engine.failed == {}  # not failed for good
        assert any("memory snapshot failed (transient: the next try is in 1 min), booting "
                   "without one: criu dump was killed by signal 9" in line for line in lines)
        _serves(first)
        second = booter.boot(square, attach)  # within the backoff: no dump tried
        assert second.kind == "fallback" and engine.checkpoints == 1
        _serves(second)
        clock.now += 60
        third = booter.boot(square, attach)  # tried again; fails again: twice as long
        assert third.kind == "fallback" and engine.checkpoints == 2
        _serves(third)
        assert booter.keys.transient_error(square.snapshot_key()) == (
            "dump: criu dump was killed by signal 9 (exit -9) (transient: next try in 2 min)")
    finally:
        db.close()
