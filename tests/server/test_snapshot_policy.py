"""The snapshot policy when dumps or restores fail: log why, mark the key, boot without a
snapshot, and don't try the failed key again. Real runtime containers (the none engine's
processes) behind an engine whose checkpoint or restore fails on purpose."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.engine import (
    Container,
    ContainerSpec,
    DumpFailed,
    RestoreFailed,
    SnapshotInfo,
)
from coldsnap.engine.none_engine import NoneEngine
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.boot import Boot, Booter
from coldsnap.server.calls import Call
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.snapshot_keys import SnapshotKeys
from coldsnap.server.state import StateDB
from coldsnap.server.worker import CallEnd, Worker
from coldsnap.settings import Settings
from coldsnap.wire.description import AppDescription
from coldsnap.wire.serialization import dumps_args
from tests.conftest import APPS


class FailingEngine:
    """Starts plain processes; ``checkpoint`` or ``restore`` fails as told."""

    name = "failing"
    host_key = "test-host"

    def __init__(self, fail: str, run_dir: Path) -> None:
        self.fail = fail
        self.inner = NoneEngine(run_dir)
        self.store = SnapshotStore(run_dir / "store", self.host_key)  # it takes snapshots
        self.checkpoints = 0
        self.restores = 0
        self.failed: dict[str, str] = {}

    def start(self, spec: ContainerSpec) -> Container:
        return self.inner.start(spec)

    def checkpoint(self, container: Container, key: str,
                   labels: dict[str, str] | None = None,
                   warnings: list[dict[str, str]] | None = None) -> SnapshotInfo:
        self.checkpoints += 1
        raise DumpFailed("no space left on device (on purpose)")

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        self.restores += 1
        if self.fail == "restore-transient":
            raise RestoreFailed("criu restore timed out (on purpose)", transient=True)
        if self.fail == "restore-bug":
            raise KeyError("a bug in the engine (on purpose)")
        raise RestoreFailed("the image is corrupt (on purpose)")

    def lookup(self, key: str) -> SnapshotInfo | None:
        if self.fail.startswith("restore"):
            return SnapshotInfo(key, self.host_key, Path("/nonexistent"), 1, 0.1, time.time())
        return None

    def mark_failed(self, key: str, reason: str) -> None:
        self.failed[key] = reason

    def failure(self, key: str) -> str | None:
        return self.failed.get(key)


@pytest.fixture
def square() -> FunctionSpec:
    description = AppDescription.from_dict({
        "app": "test-square", "image": {"hash": "", "spec": {"layers": [{"op": "from_host"}]}},
        "functions": {"square": {"kind": "function", "options": {"enable_memory_snapshot": True}}},
        "module": "square"})
    return FunctionSpec.from_description("test-square", "f" * 64, "square", description,
                                         (APPS / "square.py").read_bytes(), None)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    database = StateDB(tmp_path / "state.db")
    yield database
    database.close()


def _boot(booter: Booter, fn: FunctionSpec, lines: list[str]) -> Boot:
    def attach(container: Container) -> Worker:
        return Worker(container, log_line=lambda _w, line: lines.append(line))

    return booter.boot(fn, attach)


def _serves(boot: Boot) -> None:
    call = Call("test-square", "square", None, dumps_args((9,), {}), timeout_s=30, retries=0)
    try:
        result = boot.worker.run_call(call)
        assert result.end is CallEnd.RESULT and result.ok is True
    finally:
        boot.worker.shutdown()


@pytest.mark.parametrize("fail", ["dump", "restore"])
def test_failed_snapshot_falls_back_and_is_not_retried(
    fail: str, square: FunctionSpec, db: StateDB, tmp_path: Path
) -> None:
    engine = FailingEngine(fail, tmp_path)
    settings = Settings(state_dir=tmp_path, boot_timeout_s=60)
    logged: list[tuple[str, str, int, str]] = []
    booter = Booter(settings, engine, db, note=lambda app, line, level, log: logged.append(
        (app, line, level, log.name)))
    lines: list[str] = []
    first = _boot(booter, square, lines)
    assert first.kind == "fallback"
    key = square.snapshot_key()
    if fail == "dump":
        assert engine.checkpoints == 1
        assert engine.failed[key] == "dump: no space left on device (on purpose)"
        assert any("memory snapshot failed, booting without one: no space left" in line
                   for line in lines)
    else:
        assert engine.restores == 1
        assert engine.failed[key] == "restore: the image is corrupt (on purpose)"
        assert logged and "restore from memory snapshot failed" in logged[0][1]
        assert logged[0][2:] == (logging.WARNING, "coldsnap.server.boot")
        assert "restore from memory snapshot failed" in first.worker.pending_logs[0]
    assert booter.keys.failure(key) == engine.failed[key]  # the engine's record, no other
    _serves(first)

    second = _boot(booter, square, lines)
    assert second.kind == "fallback"
    assert (engine.checkpoints, engine.restores) == ((1, 0) if fail == "dump" else (0, 1))
    _serves(second)


@pytest.mark.parametrize("fail", ["restore-transient", "restore-bug"])
def test_a_transient_restore_failure_falls_back_and_retries_later(
    fail: str, square: FunctionSpec, db: StateDB, tmp_path: Path
) -> None:
    engine = FailingEngine(fail, tmp_path)
    now = [1000.0]
    booter = Booter(Settings(state_dir=tmp_path, boot_timeout_s=60), engine, db,
                    note=lambda app, line, level, log: None)
    booter.keys = SnapshotKeys(engine, clock=lambda: now[0])
    lines: list[str] = []
    first = _boot(booter, square, lines)
    assert first.kind == "fallback" and engine.restores == 1
    assert engine.failed == {}  # the snapshot is not given up on
    assert "restore from memory snapshot failed" in first.worker.pending_logs[0]
    _serves(first)
    second = _boot(booter, square, lines)  # within the pause: no restore tried
    assert second.kind == "fallback" and engine.restores == 1
    _serves(second)
    now[0] += 301
    third = _boot(booter, square, lines)
    assert third.kind == "fallback" and engine.restores == 2
    _serves(third)

