"""StateDB's boots: each keeps the host its container booted on, older state dirs too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from coldsnap.server.state import StateDB


def test_a_boot_keeps_its_host(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    db.add_boot("a", "v1", "f", "cs-1", "restored", True, {"boot_s": 0.1}, host="vm/4dd48a51")
    db.add_boot("a", "v1", "f", "cs-2", "plain", True, {"boot_s": 0.2})
    assert [(b["container_id"], b["host"]) for b in db.boots("a")] == [
        ("cs-2", ""), ("cs-1", "vm/4dd48a51")]


def test_boots_recorded_by_an_older_server_read_without_a_host(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)  # the table as it was, before fleets
    old.execute("CREATE TABLE boots (id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, "
                "version TEXT NOT NULL, tag TEXT NOT NULL, container_id TEXT NOT NULL, kind "
                "TEXT NOT NULL, ok INTEGER NOT NULL, timings TEXT NOT NULL, error TEXT, "
                "created_at REAL NOT NULL)")
    old.execute("INSERT INTO boots (app, version, tag, container_id, kind, ok, timings, "
                "created_at) VALUES ('a', 'v0', 'f', 'cs-0', 'plain', 1, '{}', 0)")
    old.commit()
    old.close()
    db = StateDB(path)
    db.add_boot("a", "v1", "f", "cs-1", "restored", True, {}, host="vm/1")
    assert [(b["container_id"], b["host"]) for b in db.boots("a")] == [
        ("cs-1", "vm/1"), ("cs-0", "")]
