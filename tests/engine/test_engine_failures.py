"""What goes wrong around CRIU gets a typed error with a clear message, never a crash."""

import contextlib
import dataclasses
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.engine.base import DumpFailed, EngineUnavailable, RestoreFailed, SnapshotMiss
from coldsnap.engine.criu_engine import CriuEngine
from coldsnap.settings import Settings

from .conftest import ask, read_line, worker_spec


def test_missing_criu_names_the_fix(criu_settings: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(criu_settings, criu_path=tmp_path / "no-criu")
    with pytest.raises(EngineUnavailable, match="install-criu.sh.*COLDSNAP_ENGINE=none"):
        CriuEngine(settings)


@contextlib.contextmanager
def criu_killed_at_start(engine: CriuEngine, tmp_path: Path) -> Iterator[None]:
    """Swap in a `criu` that is SIGKILLed as soon as it runs."""
    killer = tmp_path / "criu"
    killer.write_text("#!/bin/sh\nkill -9 $$\n")
    killer.chmod(0o755)
    real = engine.settings
    engine.settings = dataclasses.replace(real, criu_path=killer)
    try:
        yield
    finally:
        engine.settings = real


def test_killed_criu_is_a_dump_error(engine: CriuEngine, tmp_path: Path) -> None:
    container = engine.start(worker_spec())
    read_line(container)
    with criu_killed_at_start(engine, tmp_path), pytest.raises(
        DumpFailed, match="killed by signal 9"
    ):
        engine.checkpoint(container, "killed")
    assert engine.lookup("killed") is None


def test_full_disk_during_dump_leaves_nothing(criu_settings: Settings, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny-store"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tiny", str(tiny)], check=True)
    engine = CriuEngine(dataclasses.replace(criu_settings, snapshot_dir=tiny))
    try:
        container = engine.start(worker_spec())
        read_line(container)
        with pytest.raises(DumpFailed) as failure:
            engine.checkpoint(container, "full-disk")
        assert "No space left" in str(failure.value) or failure.value.log_tail
        assert engine.lookup("full-disk") is None
        assert not list((tiny / ".staging").iterdir())
    finally:
        engine.netns.close()
        subprocess.run(["umount", "-l", str(tiny)], check=False)


def test_store_deleted_under_a_running_engine(engine: CriuEngine) -> None:
    container = engine.start(worker_spec())
    read_line(container)
    engine.checkpoint(container, "deleted")
    shutil.rmtree(engine.store.root)
    with pytest.raises(SnapshotMiss):
        engine.restore("deleted", worker_spec())
    # The engine carries on: the next dump recreates the store.
    container = engine.start(worker_spec())
    read_line(container)
    engine.checkpoint(container, "deleted")
    copy = engine.restore("deleted", worker_spec())
    try:
        assert ask(copy, "state")["file"] == "kept"
    finally:
        copy.kill()


def test_memory_limit_from_cgroups(engine: CriuEngine) -> None:
    spec = worker_spec(snapshot_phase=False, WORKER_HEAP_MB="300")
    spec.memory_mb = 100
    container = engine.start(spec)
    try:
        assert container.ctrl_out.readline() == b""  # killed before it could say ready
        assert container.wait(10) is not None
    finally:
        container.kill()


def test_a_killed_restore_is_transient_and_keeps_the_snapshot(
    engine: CriuEngine, tmp_path: Path
) -> None:
    container = engine.start(worker_spec())
    read_line(container)
    engine.checkpoint(container, "restore-killed")
    with criu_killed_at_start(engine, tmp_path), pytest.raises(RestoreFailed) as failure:
        engine.restore("restore-killed", worker_spec())
    assert failure.value.transient
    assert engine.lookup("restore-killed") is not None  # not quarantined, not failed
    copy = engine.restore("restore-killed", worker_spec())
    try:
        assert ask(copy, "state")["file"] == "kept"
    finally:
        copy.kill()


def test_deleting_a_failed_key_allows_another_try(engine: CriuEngine) -> None:
    engine.mark_failed("retry-me", "dump: something broke")
    assert engine.failure("retry-me") is not None
    assert engine.store.delete("retry-me")
    assert engine.failure("retry-me") is None
    assert not engine.store.delete("retry-me")  # nothing left: says so
