"""The server's durable state in SQLite: apps, versions, boots, snapshot keys, and
spawned calls with their results.

One connection shared by all threads behind one lock: the server writes a few
rows per boot or deploy, and two per spawned call (at its spawn, at its end); a
plain ``call`` writes none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coldsnap.server.images.built import BuiltImage
from coldsnap.wire.description import AppDescription

_SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY, version TEXT NOT NULL, state TEXT NOT NULL,
    ephemeral INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    app TEXT NOT NULL, version TEXT NOT NULL, filename TEXT NOT NULL, source BLOB NOT NULL,
    description TEXT NOT NULL, created_at REAL NOT NULL, built_images TEXT,
    PRIMARY KEY (app, version));
CREATE TABLE IF NOT EXISTS boots (
    id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, version TEXT NOT NULL,
    tag TEXT NOT NULL, container_id TEXT NOT NULL, kind TEXT NOT NULL, ok INTEGER NOT NULL,
    timings TEXT NOT NULL, error TEXT, created_at REAL NOT NULL, host TEXT);
CREATE INDEX IF NOT EXISTS boots_app ON boots (app, id);
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY, app TEXT NOT NULL, tag TEXT NOT NULL, method TEXT,
    state TEXT NOT NULL, error_kind TEXT, error_message TEXT, blob BLOB, blob_file TEXT,
    logs TEXT, attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    finished_at REAL);
CREATE INDEX IF NOT EXISTS calls_finished ON calls (state, finished_at);
CREATE TABLE IF NOT EXISTS snapshot_keys (
    key TEXT PRIMARY KEY, app TEXT NOT NULL, version TEXT NOT NULL, tag TEXT NOT NULL,
    restores INTEGER NOT NULL DEFAULT 0, last_error TEXT, updated_at REAL NOT NULL);
"""
# snapshot_keys.last_error is no longer written or read: a key's failure has one record,
# the snapshot store's (see SnapshotKeys in snapshot_keys.py). The column stays so that a state
# dir still opens with an older coldsnap server.
# versions.built_images came later: state dirs made before it get the column added (their
# rows keep the built images inside the description, where StateDB.version finds them).
_ADD_BUILT_IMAGES = "ALTER TABLE versions ADD COLUMN built_images TEXT"
# boots.host came with fleets (the host a container booted on; "" on one host alone):
# older state dirs get the column, their rows NULL (read as "").
_ADD_BOOT_HOST = "ALTER TABLE boots ADD COLUMN host TEXT"
_MAX_BOOTS = 5000
# A spawned call's states: QUEUED from its spawn until it ends; DONE with its result or
# error; INTERRUPTED when the server stopped first; EXPIRED once its result is removed
# (the row stays a while longer so that `get` can say so).
QUEUED, DONE, INTERRUPTED, EXPIRED = "queued", "done", "interrupted", "expired"


@dataclasses.dataclass(frozen=True)
class CallRecord:
    """A spawned call's row: which function, its state and, once ended, its outcome
    (``blob`` inline, or in the file ``blob_file`` names). Times are Unix seconds."""

    id: str
    app: str
    tag: str
    method: str | None
    state: str
    created_at: float
    error_kind: str | None = None  # None: the call returned (or has not ended)
    error_message: str | None = None
    blob: bytes | None = None
    blob_file: str | None = None
    logs: tuple[str, ...] = ()
    attempts: int = 0
    finished_at: float | None = None


@dataclasses.dataclass(frozen=True)
class StoredVersion:
    """One deployed version: its source, its description, and the images built for it."""

    app: str
    version: str
    filename: str
    source: bytes
    description: AppDescription
    built_images: dict[str, BuiltImage]  # tag -> what its containers run


class StateDB:
    """The state database's one connection: apps, their versions (source, description,
    built images), the boots of their containers (the newest ``_MAX_BOOTS``) and the
    snapshot keys made for them."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: safe if the server crashes, no fsync on each boot's record.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row["name"] for row in self._db.execute("PRAGMA table_info(versions)")}
            if "built_images" not in columns:
                self._db.execute(_ADD_BUILT_IMAGES)
            columns = {row["name"] for row in self._db.execute("PRAGMA table_info(boots)")}
            if "host" not in columns:
                self._db.execute(_ADD_BOOT_HOST)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection, to this thread alone, inside one transaction (for modules that
        keep tables of their own here: Dicts and Queues, server/objects.py)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # apps and versions

    def app(self, name: str) -> dict[str, Any] | None:
        rows = self._run("SELECT * FROM apps WHERE name = ?", (name,))
        return dict(rows[0]) if rows else None

    def apps(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._run("SELECT * FROM apps ORDER BY name")]

    def put_version(self, stored: StoredVersion) -> None:
        built = {tag: image.to_record() for tag, image in stored.built_images.items()}
        self._run(
            "INSERT OR IGNORE INTO versions (app, version, filename, source, description, "
            "created_at, built_images) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stored.app, stored.version, stored.filename, stored.source,
             json.dumps(stored.description.to_dict()), time.time(), json.dumps(built)),
        )

    def version(self, app: str, version: str) -> StoredVersion | None:
        rows = self._run("SELECT * FROM versions WHERE app = ? AND version = ?", (app, version))
        if not rows:
            return None
        row = rows[0]
        data = json.loads(row["description"])
        records = data.pop("built_images", {})  # where state dirs of before kept them
        if row["built_images"] is not None:
            records = json.loads(row["built_images"])
        # Checked when it was deployed: a rule added since must not make it unloadable.
        description = AppDescription.from_dict(data, validate=False)
        built = {tag: BuiltImage.from_record(record) for tag, record in records.items()}
        return StoredVersion(app, version, row["filename"], row["source"], description, built)

    def versions_of(self, app: str) -> list[dict[str, Any]]:
        """An app's deployed versions, newest first (the dashboard lists them)."""
        return [dict(r) for r in self._run(
            "SELECT version, filename, created_at FROM versions WHERE app = ? "
            "ORDER BY created_at DESC", (app,))]

    def set_app(self, name: str, version: str, state: str, ephemeral: bool) -> None:
        now = time.time()
        self._run(
            "INSERT INTO apps VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
            "version = excluded.version, state = excluded.state, "
            "ephemeral = excluded.ephemeral, updated_at = excluded.updated_at",
            (name, version, state, int(ephemeral), now, now),
        )

    def set_app_state(self, name: str, state: str) -> None:
        self._run("UPDATE apps SET state = ?, updated_at = ? WHERE name = ?",
                  (state, time.time(), name))

    def delete_app(self, name: str) -> None:
        self._run("DELETE FROM apps WHERE name = ?", (name,))
        self._run("DELETE FROM versions WHERE app = ?", (name,))

    # boots

    def add_boot(
        self, app: str, version: str, tag: str, container_id: str, kind: str, ok: bool,
        timings: dict[str, float], error: str | None = None, host: str = "",
    ) -> int:
        """Record a boot; ``host``: the fleet's host it ran on ("" on one host alone)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO boots (app, version, tag, container_id, kind, ok, timings, error,"
                " created_at, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (app, version, tag, container_id, kind, int(ok), json.dumps(timings), error,
                 time.time(), host),
            )
            row_id = cur.lastrowid or 0
            if row_id % 500 == 0:
                self._db.execute("DELETE FROM boots WHERE id < ?", (row_id - _MAX_BOOTS,))
            return row_id

    def update_boot_timings(self, boot_id: int, timings: dict[str, float]) -> None:
        self._run("UPDATE boots SET timings = ? WHERE id = ?", (json.dumps(timings), boot_id))

    def boots(self, app: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._run("SELECT * FROM boots WHERE app = ? ORDER BY id DESC LIMIT ?",
                         (app, limit))
        result = []
        for row in rows:
            item = dict(row)
            item["timings"] = json.loads(item["timings"])
            item["ok"] = bool(item["ok"])
            item["host"] = item.get("host") or ""
            result.append(item)
        return result

    # snapshot keys: which app and function a key belongs to, how often it was restored

    def note_snapshot_key(self, key: str, app: str, version: str, tag: str) -> None:
        """``app`` boots from ``key``: the key is its, unless an app that is deployed (not
        ephemeral, not deleted) has it already. A `coldsnap run` copy's key passes on to
        the deployed app of the same source that restores from it."""
        self._run(
            "INSERT INTO snapshot_keys (key, app, version, tag, updated_at) VALUES "
            "(?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET app = excluded.app WHERE "
            "snapshot_keys.app NOT IN (SELECT name FROM apps WHERE ephemeral = 0)",
            (key, app, version, tag, time.time()),
        )

    def count_restore(self, key: str) -> None:
        self._run("UPDATE snapshot_keys SET restores = restores + 1, updated_at = ? "
                  "WHERE key = ?", (time.time(), key))

    def snapshot_keys(self) -> dict[str, dict[str, Any]]:
        return {r["key"]: dict(r) for r in self._run(
            "SELECT key, app, version, tag, restores, updated_at FROM snapshot_keys")}

    # spawned calls: from their spawn until their result expires

    def add_call(self, record: CallRecord) -> None:
        self._run("INSERT INTO calls (id, app, tag, method, state, created_at) VALUES "
                  "(?, ?, ?, ?, ?, ?)", (record.id, record.app, record.tag, record.method,
                                         record.state, record.created_at))

    def end_call(self, record: CallRecord) -> None:
        """Record how the call ended (``state``, its outcome, ``finished_at``)."""
        self._run(
            "UPDATE calls SET state = ?, error_kind = ?, error_message = ?, blob = ?, "
            "blob_file = ?, logs = ?, attempts = ?, finished_at = ? WHERE id = ?",
            (record.state, record.error_kind, record.error_message, record.blob,
             record.blob_file, json.dumps(list(record.logs)), record.attempts,
             record.finished_at, record.id))

    def call(self, call_id: str) -> CallRecord | None:
        rows = self._run("SELECT * FROM calls WHERE id = ?", (call_id,))
        if not rows:
            return None
        row = dict(rows[0])
        row["logs"] = tuple(json.loads(row["logs"])) if row["logs"] else ()
        return CallRecord(**row)

    def interrupt_calls(self, reason: str, at: float) -> int:
        """Mark every call that has not ended as interrupted (the server that ran them
        is gone); returns how many."""
        with self._lock:
            return self._db.execute(
                "UPDATE calls SET state = ?, error_message = ?, finished_at = ? WHERE "
                "state = ?", (INTERRUPTED, reason, at, QUEUED)).rowcount

    def expire_calls(self, ended_before: float, forget_before: float) -> list[str]:
        """Drop the results of calls that ended before ``ended_before`` (their rows stay,
        EXPIRED) and forget calls that ended before ``forget_before``; returns the
        result files no row names any more, for the caller to remove."""
        with self._lock:
            files = [row["blob_file"] for row in self._db.execute(
                "SELECT blob_file FROM calls WHERE blob_file IS NOT NULL AND finished_at < ?"
                " AND state != ?", (ended_before, QUEUED))]
            self._db.execute(
                "UPDATE calls SET state = ?, blob = NULL, blob_file = NULL, logs = NULL "
                "WHERE state = ? AND finished_at < ?", (EXPIRED, DONE, ended_before))
            self._db.execute("DELETE FROM calls WHERE state != ? AND finished_at < ?",
                             (QUEUED, forget_before))
            return files

    def forget_call(self, call_id: str) -> list[str]:
        """Delete an ended call's row; returns its result file's name, if it had one."""
        with self._lock:
            files = [row["blob_file"] for row in self._db.execute(
                "SELECT blob_file FROM calls WHERE id = ? AND blob_file IS NOT NULL",
                (call_id,))]
            self._db.execute("DELETE FROM calls WHERE id = ? AND state != ?",
                             (call_id, QUEUED))
            return files

    def call_result_files(self) -> set[str]:
        """The result files rows name: any other file in their directory is an orphan
        (the server died between writing it and recording it)."""
        return {row["blob_file"] for row in self._run(
            "SELECT blob_file FROM calls WHERE blob_file IS NOT NULL")}
