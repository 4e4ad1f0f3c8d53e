"""`snapshots ls` on a fleet (server/host_snapshots.py), without Ray: each remote host's
store listing becomes rows with its host, failed keys included; a host that does not
answer is named with why; a single host adds nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coldsnap.engine.base import SnapshotInfo
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.fleet import Fleet
from coldsnap.server.fleet.bridge import HostLost
from coldsnap.server.host_snapshots import _plain, on_hosts, store_listing


class Agent:
    """A remote host as the fleet sees it: no store here, a listing over the wire."""

    engine_name, isolated, store, capacity = "criu", True, None, None

    def __init__(self, host: str, listing: dict[str, Any] | None | Exception) -> None:
        self.host, self.host_key, self._listing = host, f"key-of-{host}", listing

    def snapshots(self) -> dict[str, Any] | None:
        if isinstance(self._listing, Exception):
            raise self._listing
        return self._listing


class DB:
    def snapshot_keys(self) -> dict[str, dict[str, Any]]:
        return {"k1": {"app": "my-app", "tag": "f", "restores": 3}}


def test_each_hosts_snapshots_are_rows_with_their_host() -> None:
    listing = {"snapshots": [{"key": "k1", "host_key": "hk", "size_bytes": 10,
                              "created_at": 1.0}],
               "failed": {"k2": {"reason": "criu dump failed", "at": 2.0}},
               "disk_bytes": 10, "store": "/var/lib/coldsnap/hosts/n1/snapshots"}
    fleet = Fleet([Agent("vm/b", HostLost("host vm/b is gone (RayActorError)")),
                   Agent("vm/a", listing)])
    found = on_hosts(fleet, DB())  # type: ignore[arg-type]
    assert [(r["host"], r["key"], r["status"], r["app"], r["restores"], r["last_error"])
            for r in found["snapshots"]] == [
        ("vm/a", "k1", "ready", "my-app", 3, None),
        ("vm/a", "k2", "failed", None, 0, "criu dump failed")]
    assert found["hosts"] == [
        {"host": "vm/a", "host_key": "key-of-vm/a", "disk_bytes": 10,
         "store": "/var/lib/coldsnap/hosts/n1/snapshots"},
        {"host": "vm/b", "error": "host vm/b is gone (RayActorError)"}]


def test_a_single_host_adds_nothing(tmp_path: Path) -> None:
    class Local(Agent):
        store = SnapshotStore(tmp_path, "hk")  # type: ignore[assignment]

    assert on_hosts(Fleet([Local("", None)]), DB()) == {}  # type: ignore[arg-type]


def test_a_store_listing_is_plain_data(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "store", "hk")
    assert store_listing(None) is None
    empty = store_listing(store)
    assert empty is not None and empty["snapshots"] == [] and empty["failed"] == {}
    store.mark_failed("k9", "restore refused")
    failed = store_listing(store)
    assert failed is not None and failed["failed"]["k9"]["reason"] == "restore refused"
    info = SnapshotInfo("k1", "hk", tmp_path / "k1", 5, 0.1, 1.0)
    assert _plain(info)["path"] == str(tmp_path / "k1")
