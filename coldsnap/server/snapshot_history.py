"""Each function's memory snapshots over time: what went into each, and how each ended.

A row per event, in a table of its own in the server's SQLite: ``created`` (with
the snapshot's inputs: ``snapshot_inputs``), then ``failed``, ``quarantined`` or
``removed`` when the snapshot of that key stops being used. `coldsnap snapshots
why` (snapshot_why.py) compares the newest two ``created`` rows of a function and
names what happened in between. The inputs are small (hashes, names, versions,
options) and hold no secret: secrets' values never enter a snapshot key. The
source itself stays in the ``versions`` table, where the deploy put it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from coldsnap.identity import coldsnap_fingerprint, coldsnap_version
from coldsnap.server.environment import distributions_in, installed_distributions
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.state import StateDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, app TEXT NOT NULL,
    tag TEXT NOT NULL, version TEXT NOT NULL, event TEXT NOT NULL, detail TEXT,
    inputs TEXT, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS snapshot_history_function ON snapshot_history (app, tag, id);
CREATE INDEX IF NOT EXISTS snapshot_history_key ON snapshot_history (key, id)
"""
# A row of an app (two parameters, both its name): its own, or made by another app at one
# of its versions (state.py's ``versions`` table, in the same database).
_OF_APP = "(app = ? OR version IN (SELECT version FROM versions WHERE app = ?))"
CREATED, FAILED, QUARANTINED, REMOVED = "created", "failed", "quarantined", "removed"
_MAX_ROWS = 20000  # the oldest go beyond this (a few KB each)
_MAX_LAYER_DIRS = 20000  # how far a built layer is searched for its distributions
# The files a layer adds (modules next to the app, add_local_*), by hash: at most this
# many files per layer, each at most this big, outside installed packages.
_MAX_LAYER_FILES, _MAX_FILE_BYTES = 300, 256 * 1024
_NOT_OWN_FILES = frozenset({"site-packages", "dist-packages", "__pycache__", "node_modules",
                            ".git", "coldsnap", "cloudpickle"})  # the last: the runtime's


@dataclasses.dataclass(frozen=True)
class HistoryEvent:
    """One row: ``event`` happened to the snapshot ``key`` of ``app``/``tag`` at ``at``."""

    key: str
    app: str
    tag: str
    version: str
    event: str
    at: float
    detail: str | None = None
    inputs: dict[str, Any] | None = None  # with CREATED only


class SnapshotHistory:
    """Records the events of snapshots (``created``, ``ended``) and reads them back."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        with db.transaction() as conn:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)

    def created(self, fn: FunctionSpec, key: str, host: dict[str, Any]) -> None:
        """``fn``'s snapshot ``key`` was just made on a host with the facts ``host``."""
        inputs = snapshot_inputs(fn, host)
        self._add(HistoryEvent(key, fn.app, fn.tag, fn.version, CREATED, time.time(),
                               inputs=inputs))

    def ended(self, key: str, event: str, detail: str) -> None:
        """The snapshot of ``key`` is no longer used (``failed``, ``quarantined``,
        ``removed``), for the reason ``detail``. A key nothing made is not recorded."""
        made = self._last_created(key)
        if made is not None:
            self._add(dataclasses.replace(made, event=event, at=time.time(), detail=detail,
                                          inputs=None))

    def of_function(self, app: str, tag: str) -> list[HistoryEvent]:
        """Every event of ``app``/``tag``, oldest first, with those of ``tag`` made by
        another app at one of ``app``'s versions (a `coldsnap run` copy of the same source):
        a snapshot's key names the version, not the app, so ``app`` restores from it too."""
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT * FROM snapshot_history WHERE tag = ? AND {_OF_APP} "
                                "ORDER BY id", (tag, app, app)).fetchall()
        return [_event(row) for row in rows]

    def functions(self, app: str) -> list[str]:
        """The tags that have had a snapshot made, of ``app`` or at one of its versions."""
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT DISTINCT tag FROM snapshot_history WHERE event = ? "
                                f"AND {_OF_APP} ORDER BY tag", (CREATED, app, app)).fetchall()
        return [row["tag"] for row in rows]

    def _last_created(self, key: str) -> HistoryEvent | None:
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT * FROM snapshot_history WHERE key = ? AND event = ? "
                                "ORDER BY id DESC LIMIT 1", (key, CREATED)).fetchall()
        return _event(rows[0]) if rows else None

    def _add(self, event: HistoryEvent) -> None:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO snapshot_history (key, app, tag, version, event, detail, inputs, "
                "at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (event.key, event.app, event.tag, event.version, event.event, event.detail,
                 None if event.inputs is None else json.dumps(event.inputs), event.at))
            if (cursor.lastrowid or 0) % 500 == 0:
                conn.execute("DELETE FROM snapshot_history WHERE id < ?",
                             ((cursor.lastrowid or 0) - _MAX_ROWS,))


def _event(row: Any) -> HistoryEvent:
    return HistoryEvent(key=row["key"], app=row["app"], tag=row["tag"], version=row["version"],
                        event=row["event"], at=row["at"], detail=row["detail"],
                        inputs=json.loads(row["inputs"]) if row["inputs"] else None)


def snapshot_inputs(fn: FunctionSpec, host: dict[str, Any]) -> dict[str, Any]:
    """What a snapshot of ``fn`` was made from, as `snapshots why` compares it: the
    source's hash (its text is the version's), the image's steps, the packages the
    container imports from, the function's options, coldsnap's own version and the
    host's facts (the host key's parts)."""
    return {
        "version": fn.version,
        "source": {"file": fn.app_file, "sha256": hashlib.sha256(fn.source).hexdigest()},
        "image": fn.image_spec.to_dict()["layers"],
        "built_image": fn.built.hash if fn.built is not None else None,
        "python": fn.argv[0],
        "packages": packages(fn),
        "files": [layer_files(layer) for layer in fn.layers],
        "options": fn.options.to_dict(),
        "variant": fn.variant,
        "coldsnap": {"version": coldsnap_version(), "code": coldsnap_fingerprint()[:16]},
        "host": host,
    }


def packages(fn: FunctionSpec) -> dict[str, str]:
    """Distribution -> version, of what ``fn``'s containers import: the host's
    interpreter's, then what the image's layers add (highest first wins)."""
    found: dict[str, str] = {}
    for layer in fn.layers:
        for name, version in _layer_distributions(layer).items():
            found.setdefault(name, version)
    if fn.base is None:  # the host's interpreter and its site-packages
        for name, version in installed_distributions(fn.argv[0]).items():
            found.setdefault(name, version)
    return dict(sorted(found.items()))


def layer_files(layer: Path) -> dict[str, Any]:
    """``{"layer": path, "files": {relative path: sha256}}``: the small files ``layer``
    adds outside installed packages (``truncated`` when there were more)."""
    files: dict[str, str] = {}
    for dirpath, dirnames, names in os.walk(layer):
        dirnames[:] = sorted(d for d in dirnames if d not in _NOT_OWN_FILES)
        for name in sorted(names):
            path = os.path.join(dirpath, name)
            if len(files) >= _MAX_LAYER_FILES:
                return {"layer": str(layer), "files": files, "truncated": True}
            try:
                if os.path.islink(path) or os.path.getsize(path) > _MAX_FILE_BYTES:
                    continue
                with open(path, "rb") as handle:
                    files[os.path.relpath(path, layer)] = hashlib.sha256(
                        handle.read()).hexdigest()
            except OSError:
                continue
    return {"layer": str(layer), "files": files}


def _layer_distributions(layer: Path) -> dict[str, str]:
    """The distributions installed anywhere in ``layer`` (a directory tree)."""
    directories: list[str] = []
    seen = 0
    for dirpath, dirnames, _ in os.walk(layer):
        seen += 1
        if seen > _MAX_LAYER_DIRS:
            break
        if any(name.endswith((".dist-info", ".egg-info")) for name in dirnames):
            directories.append(dirpath)
            dirnames[:] = [d for d in dirnames if not d.endswith((".dist-info", ".egg-info"))
                           and d != "__pycache__"]
    return distributions_in(directories)
