"""The policy for a snapshot whose files changed after it was made (SnapshotDamaged):
fall back, don't mark the key failed, make a new snapshot at the next boot; but a
snapshot found damaged right after it was made marks the key failed (no dump loop).
Real runtime containers behind an engine whose restores find damage on purpose."""

from __future__ import annotations

import time
from pathlib import Path

from coldsnap.engine import Container, SnapshotDamaged, SnapshotInfo
from coldsnap.engine.base import ContainerSpec
from coldsnap.server.boot import Booter
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.state import StateDB
from coldsnap.settings import Settings
from tests.server.test_snapshot_policy import FailingEngine, _boot, _serves, db, square

__all__ = ["db", "square"]  # fixtures


class DamagingEngine(FailingEngine):
    """Dumps work; every restore finds ``pages-1.img`` changed and quarantines it."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__("damage", run_dir)
        self.stored: set[str] = set()

    def checkpoint(self, container: Container, key: str,
                   labels: dict[str, str] | None = None,
                   warnings: list[dict[str, str]] | None = None) -> SnapshotInfo:
        self.checkpoints += 1
        container.kill()
        self.stored.add(key)
        return SnapshotInfo(key, self.host_key, Path("/nonexistent"), 1, 0.1, time.time())

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        self.restores += 1
        self.stored.discard(key)  # quarantined
        raise SnapshotDamaged(key, "pages-1.img", "does not match its sha256 digest", None)

    def lookup(self, key: str) -> SnapshotInfo | None:
        if key in self.stored:
            return SnapshotInfo(key, self.host_key, Path("/nonexistent"), 1, 0.1, time.time())
        return None


def test_damage_falls_back_and_the_next_boot_makes_a_new_snapshot(
    square: FunctionSpec, db: StateDB, tmp_path: Path
) -> None:
    engine = DamagingEngine(tmp_path)
    engine.stored.add(square.snapshot_key())  # made earlier, damaged since
    booter = Booter(Settings(state_dir=tmp_path, boot_timeout_s=60), engine, db,
                    note=lambda app, line, level, log: None)
    first = _boot(booter, square, [])
    assert first.kind == "fallback" and engine.restores == 1
    note = first.worker.pending_logs[0]
    assert "is damaged: image file pages-1.img does not match its sha256 digest" in note
    assert "the next cold boot makes a new snapshot" in note
    assert engine.failed == {}
    _serves(first)

    second = _boot(booter, square, [])  # makes a new one; it is found damaged at once
    assert engine.checkpoints == 1 and engine.restores == 2
    assert second.kind == "fallback"
    assert any("right after it was made" in line for line in second.worker.pending_logs)
    assert engine.failed[square.snapshot_key()].startswith("restore: snapshot ")
    _serves(second)

    third = _boot(booter, square, [])  # failed for good: no dump loop
    assert third.kind == "fallback" and (engine.checkpoints, engine.restores) == (1, 2)
    _serves(third)
