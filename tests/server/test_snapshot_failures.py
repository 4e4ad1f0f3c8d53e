"""A snapshot key's failure has one record, the store's: written through SnapshotKeys,
read once per claim, seen by a fresh server after a restart, cleared by `snapshots rm`.
Also the snapshot admin (`snapshots ls|inspect|rm|gc`) on top of it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.engine import ContainerSpec, SnapshotInfo
from coldsnap.engine.base import Container
from coldsnap.engine.none_engine import NoneEngine
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.errors import ApiError
from coldsnap.server.snapshot_keys import Claim, SnapshotKeys
from coldsnap.server.snapshots import SnapshotAdmin
from coldsnap.server.state import StateDB
from coldsnap.settings import Settings

KEY = "0123abcd-square"


class StoreEngine:
    """An engine over a real SnapshotStore that never runs a container: what
    SnapshotKeys and SnapshotAdmin ask of the criu engine, minus CRIU."""

    name = "store-only"
    host_key = "test-host"

    def __init__(self, root: Path) -> None:
        self.store = SnapshotStore(root, self.host_key)
        self.failure_reads = 0
        self.deleted = 0

    def start(self, spec: ContainerSpec) -> Container:
        raise NotImplementedError

    def checkpoint(self, container: Container, key: str,
                   labels: dict[str, str] | None = None,
                   warnings: list[dict[str, str]] | None = None) -> SnapshotInfo:
        raise NotImplementedError

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        raise NotImplementedError

    def lookup(self, key: str) -> SnapshotInfo | None:
        return self.store.get(key)

    def mark_failed(self, key: str, reason: str) -> None:
        self.store.mark_failed(key, reason)

    def failure(self, key: str) -> str | None:
        self.failure_reads += 1
        return self.store.failure(key)

    def snapshots_deleted(self) -> None:
        self.deleted += 1

    def close(self) -> None:
        pass


class Server:
    """The parts of one server run that hold failures: engine, database, keys, admin."""

    def __init__(self, state: Path) -> None:
        self.settings = Settings(state_dir=state)
        self.engine = StoreEngine(state / "snapshots")
        self.db = StateDB(state / "state.db")
        self.keys = SnapshotKeys(self.engine)
        self.admin = SnapshotAdmin(self.settings, self.engine, self.db, self.keys)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.db.close()


def _start(servers: list[Server], state: Path) -> Server:
    server = Server(state)
    server.db.note_snapshot_key(KEY, "app", "v" * 64, "square")
    servers.append(server)
    return server


def _publish(store: SnapshotStore, key: str) -> None:
    staging = store.staging_dir(key)
    (staging / "images").mkdir()
    (staging / "images" / "core-1.img").write_bytes(b"image")
    store.publish(staging, key, {"labels": {"app": "app", "function": "square"}})


def test_a_failure_outlives_a_restart_and_rm_clears_it(
    servers: list[Server], tmp_path: Path
) -> None:
    first = _start(servers, tmp_path)
    first.keys.mark_failed(KEY, "dump: no space left on device")
    raw = sqlite3.connect(tmp_path / "state.db")
    assert raw.execute("SELECT last_error FROM snapshot_keys").fetchall() == [(None,)]
    raw.close()

    again = _start(servers, tmp_path)  # a restart: nothing carried over in memory
    assert again.keys.claim(KEY, 1) is Claim.FALLBACK
    [row] = again.admin.ls()
    assert (row["key"], row["status"], row["app"], row["tag"]) == (KEY, "failed", "app",
                                                                   "square")
    assert row["last_error"] == "dump: no space left on device"
    with pytest.raises(ApiError, match="making one failed .dump: no space left"):
        again.admin.inspect(KEY)

    assert again.admin.rm(KEY) == {"snapshot_removed": False, "failure_cleared": True}
    assert again.keys.claim(KEY, 1) is Claim.CREATE
    again.keys.release(KEY)
    assert again.admin.ls() == [] and first.keys.failure(KEY) is None
    with pytest.raises(ApiError, match="no snapshot or failure record"):
        again.admin.rm(KEY)


def test_a_claim_reads_the_failure_record_once(servers: list[Server], tmp_path: Path) -> None:
    server = _start(servers, tmp_path)
    _publish(server.engine.store, KEY)
    assert server.keys.claim(KEY, 1) is Claim.RESTORE
    server.keys.mark_failed(KEY, "restore: corrupt image")
    assert server.keys.claim(KEY, 1) is Claim.FALLBACK
    assert server.engine.failure_reads == 2


def test_ls_shows_a_failed_snapshot_and_a_transient_error_until_a_restart(
    servers: list[Server], tmp_path: Path
) -> None:
    server = _start(servers, tmp_path)
    _publish(server.engine.store, KEY)
    _publish(server.engine.store, "other-key")
    server.keys.mark_failed(KEY, "restored container died: exit 1")
    server.keys.mark_transient("other-key", "restore: criu restore timed out")
    rows = {row["key"]: row for row in server.admin.ls()}
    assert rows[KEY]["status"] == "failed"  # on disk, but not restored
    assert rows[KEY]["last_error"] == "restored container died: exit 1"
    assert rows["other-key"]["last_error"].startswith("restore: criu restore timed out "
                                                      "(transient")
    assert server.admin.inspect(KEY)["last_error"] == "restored container died: exit 1"

    again = _start(servers, tmp_path)
    rows = {row["key"]: row for row in again.admin.ls()}
    assert rows[KEY]["last_error"] == "restored container died: exit 1"
    assert rows["other-key"]["last_error"] is None  # transient: memory only
    assert again.admin.rm(KEY) == {"snapshot_removed": True, "failure_cleared": True}
    assert again.engine.deleted == 1  # the engine frees the snapshot's layers


def test_rm_clears_a_transient_failure(servers: list[Server], tmp_path: Path) -> None:
    server = _start(servers, tmp_path)
    server.keys.mark_transient(KEY, "restore: criu restore timed out")
    assert server.admin.rm(KEY) == {"snapshot_removed": False, "failure_cleared": True}
    assert server.keys.transient_error(KEY) is None


def test_gc_and_bad_arguments(servers: list[Server], tmp_path: Path) -> None:
    server = _start(servers, tmp_path)
    _publish(server.engine.store, KEY)
    with pytest.raises(ApiError, match="keep must be 0 or more, not -1"):
        server.admin.gc(-1)
    with pytest.raises(ApiError, match="is not a snapshot key"):
        server.admin.inspect("../etc")
    assert server.admin.gc(0) == ([KEY], {"removed": 0, "bytes": 0})
    assert server.admin.usage()["store"] == str(tmp_path / "snapshots")


def test_the_none_engine_has_no_snapshots_to_administer(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    engine = NoneEngine(tmp_path)
    admin = SnapshotAdmin(Settings(state_dir=tmp_path), engine, db, SnapshotKeys(engine))
    try:
        for op in (admin.ls, admin.usage, lambda: admin.inspect(KEY), lambda: admin.rm(KEY),
                   admin.gc):
            with pytest.raises(ApiError, match="not available with engine 'none'.*"
                               "COLDSNAP_ENGINE=criu"):
                op()
    finally:
        db.close()
