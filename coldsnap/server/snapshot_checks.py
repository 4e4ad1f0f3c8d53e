"""The last check of each snapshot's image files against the digests taken when it was
made: by `coldsnap snapshots verify`, or by a restore (which checks them beside CRIU,
engine/digests.py). `snapshots ls --json`, `snapshots inspect` and the dashboard's
snapshots page show it.

One row per key in a table of its own in the server's SQLite, replaced at each check.
A damaged snapshot is quarantined at once (so it leaves `snapshots ls`), but its
failed check stays here for `snapshots inspect`'s and the history's sake.
"""

from __future__ import annotations

import dataclasses
import time

from coldsnap.server.state import StateDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot_checks (
    key TEXT PRIMARY KEY, ok INTEGER NOT NULL, by TEXT NOT NULL, detail TEXT,
    at REAL NOT NULL)
"""
BY_VERIFY, BY_RESTORE = "snapshots verify", "restore"


@dataclasses.dataclass(frozen=True)
class SnapshotCheck:
    """``key``'s files matched their digests (``ok``) or not (``detail`` says how), as
    checked ``by`` a restore or `snapshots verify` at ``at`` (a Unix time)."""

    key: str
    ok: bool
    by: str
    at: float
    detail: str | None = None

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """``ok (restore)`` or ``damaged (snapshots verify): image file ...``."""
        return f"ok ({self.by})" if self.ok else f"damaged ({self.by}): {self.detail}"


class SnapshotChecks:
    """Records each key's last check (``record``) and reads them back (``last``)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        with db.transaction() as conn:
            conn.execute(_SCHEMA)

    def record(self, key: str, ok: bool, by: str, detail: str | None = None) -> None:
        with self._db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO snapshot_checks (key, ok, by, detail, at) "
                         "VALUES (?, ?, ?, ?, ?)", (key, int(ok), by, detail, time.time()))

    def last(self) -> dict[str, SnapshotCheck]:
        """Every key's last check, by key."""
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT key, ok, by, detail, at FROM snapshot_checks").fetchall()
        return {row["key"]: SnapshotCheck(row["key"], bool(row["ok"]), row["by"], row["at"],
                                          row["detail"]) for row in rows}

    def forget(self, key: str) -> None:
        """``key``'s snapshot was removed: a new one of the same key starts unchecked."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM snapshot_checks WHERE key = ?", (key,))
