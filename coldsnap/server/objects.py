"""Dicts and Queues: named key-value maps and FIFO queues in the state database.

Both live in tables of their own in the server's SQLite (``StateDB.transaction``),
so named ones survive restarts; ephemeral ones (``Dict.ephemeral()``) are deleted
when their ``with`` block ends, and at the next start of the server. Keys and
values arrive pickled and are stored as they came: the server never unpickles
user data. A Dict's keys compare by their pickled bytes.

A queue ``get`` that finds nothing waits on one condition that every ``put``
notifies, at most ``MAX_BLOCK_S`` per request (the client asks again for longer
waits), so a waiting client holds a server thread only that long.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coldsnap.server.errors import ApiError, Reply
from coldsnap.server.state import StateDB
from coldsnap.wire.errors import BAD_REQUEST, NOT_FOUND
from coldsnap.wire.names import APP_NAME_RULE, is_app_name
from coldsnap.wire.objects import (
    DICT,
    KINDS,
    MAX_BLOCK_S,
    MAX_PARTITION_KEY_BYTES,
    PARTITION_TTL_S,
    QUEUE,
    pack,
    title,
    unpack,
)

if TYPE_CHECKING:
    from coldsnap.server.api import Request

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, name TEXT NOT NULL, ephemeral INTEGER NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS dict_entries (
    dict TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, PRIMARY KEY (dict, key));
CREATE TABLE IF NOT EXISTS queue_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, partition TEXT NOT NULL,
    value BLOB NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS queue_items_order ON queue_items (queue, partition, id);
"""
EPHEMERAL_PREFIX = "ephemeral-"  # not a valid name for from_name: ephemeral ones stay apart
MAX_ITEMS_PER_GET = 10_000
Action = Callable[["Objects", str, "Request"], Reply]


class Objects:
    """Every Dict and Queue of one server; ``answer`` runs one ``object`` request."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        self._put = threading.Condition()  # notified on every queue put
        with db.transaction() as conn:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)

    def start(self) -> None:
        """Ephemeral objects belonged to clients of an earlier run: gone with it."""
        with self._db.transaction() as conn:
            names = [(r["kind"], r["name"]) for r in conn.execute(
                "SELECT kind, name FROM objects WHERE ephemeral = 1")]
            for kind, name in names:
                _drop(conn, kind, name)

    def answer(self, req: Request) -> Reply:
        kind = req.field("kind", str)
        action = req.field("action", str)
        handler = ACTIONS.get((kind, action))
        if handler is None:
            known = ", ".join(sorted(a for k, a in ACTIONS if k == kind)) or "none"
            raise ApiError(BAD_REQUEST, f"no {kind!r} action {action!r}; known: {known}")
        name = req.field("name", str, "")
        if action not in ("ls", "create_ephemeral", "delete"):
            self._require(kind, name, bool(req.field("create_if_missing", bool, False)))
        return handler(self, name, req)

    def _require(self, kind: str, name: str, create: bool) -> None:
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM objects WHERE kind = ? AND name = ?",
                            (kind, name)).fetchone():
                return
            if name.startswith(EPHEMERAL_PREFIX):
                raise ApiError(NOT_FOUND, f"the ephemeral {title(kind)} {name!r} was deleted: "
                               "its `with` block ended, or the server restarted")
            if not create:
                raise ApiError(NOT_FOUND, f"no {title(kind)} named {name!r}; create it with "
                               f"coldsnap.{title(kind)}.from_name({name!r}, "
                               "create_if_missing=True)")
            if not is_app_name(name):
                raise ApiError(BAD_REQUEST, f"{title(kind)} name {name!r} is invalid: use "
                               f"{APP_NAME_RULE}")
            conn.execute("INSERT INTO objects VALUES (?, ?, 0, ?)", (kind, name, time.time()))

    # common to both kinds

    def ls(self, name: str, req: Request) -> Reply:
        kind = req.field("kind", str)
        table, column = ("dict_entries", "dict") if kind == DICT else ("queue_items", "queue")
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"SELECT name, created_at, (SELECT COUNT(*) FROM {table} WHERE {column} = "
                "objects.name) AS count FROM objects WHERE kind = ? AND ephemeral = 0 "
                "ORDER BY name", (kind,)).fetchall()
        return {"ok": True, "objects": [dict(row) for row in rows]}, None

    def create_ephemeral(self, name: str, req: Request) -> Reply:
        name = EPHEMERAL_PREFIX + secrets.token_hex(8)
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO objects VALUES (?, ?, 1, ?)",
                         (req.field("kind", str), name, time.time()))
        return {"ok": True, "name": name}, None

    def delete(self, name: str, req: Request) -> Reply:
        kind = req.field("kind", str)
        with self._db.transaction() as conn:
            found = _drop(conn, kind, name)
        if not found and not req.field("allow_missing", bool, False):
            raise ApiError(NOT_FOUND, f"no {title(kind)} named {name!r} to delete")
        return {"ok": True, "deleted": found}, None

    # Dict

    def dict_get(self, name: str, req: Request) -> Reply:
        (key,) = _items(req, 1)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT value FROM dict_entries WHERE dict = ? AND key = ?",
                               (name, key)).fetchone()
        if row is None:
            return {"ok": True, "found": False}, None
        return {"ok": True, "found": True}, pack([row["value"]])

    def dict_put(self, name: str, req: Request) -> Reply:
        key, value = _items(req, 2)
        skip = bool(req.field("skip_if_exists", bool, False))
        conflict = "DO NOTHING" if skip else "DO UPDATE SET value = excluded.value"
        with self._db.transaction() as conn:
            done = conn.execute("INSERT INTO dict_entries VALUES (?, ?, ?) ON CONFLICT(dict, "
                                f"key) {conflict}", (name, key, value)).rowcount
        return {"ok": True, "created": bool(done)}, None

    def dict_update(self, name: str, req: Request) -> Reply:
        items = unpack_checked(req)
        if len(items) % 2:
            raise ApiError(BAD_REQUEST, "a Dict update's blob holds key, value pairs")
        with self._db.transaction() as conn:
            conn.executemany("INSERT INTO dict_entries VALUES (?, ?, ?) ON CONFLICT(dict, key) "
                             "DO UPDATE SET value = excluded.value",
                             [(name, items[i], items[i + 1]) for i in range(0, len(items), 2)])
        return {"ok": True}, None

    def dict_pop(self, name: str, req: Request) -> Reply:
        (key,) = _items(req, 1)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT value FROM dict_entries WHERE dict = ? AND key = ?",
                               (name, key)).fetchone()
            conn.execute("DELETE FROM dict_entries WHERE dict = ? AND key = ?", (name, key))
        if row is None:
            return {"ok": True, "found": False}, None
        return {"ok": True, "found": True}, pack([row["value"]])

    def dict_len(self, name: str, req: Request) -> Reply:
        with self._db.transaction() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM dict_entries WHERE dict = ?",
                                    (name,)).fetchone()
        return {"ok": True, "len": count}, None

    def dict_items(self, name: str, req: Request) -> Reply:
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT key, value FROM dict_entries WHERE dict = ? ORDER BY "
                                "rowid", (name,)).fetchall()
        return {"ok": True}, pack([part for row in rows for part in (row[0], row[1])])

    def dict_clear(self, name: str, req: Request) -> Reply:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM dict_entries WHERE dict = ?", (name,))
        return {"ok": True}, None

    # Queue

    def queue_put(self, name: str, req: Request) -> Reply:
        values = unpack_checked(req)
        partition = _partition(req)
        ttl = req.number("partition_ttl", above=0, most=PARTITION_TTL_S * 365)
        expires = time.time() + (PARTITION_TTL_S if ttl is None else ttl)
        with self._put:
            with self._db.transaction() as conn:
                conn.execute("DELETE FROM queue_items WHERE queue = ? AND expires_at < ?",
                             (name, time.time()))
                conn.executemany("INSERT INTO queue_items (queue, partition, value, "
                                 "expires_at) VALUES (?, ?, ?, ?)",
                                 [(name, partition, value, expires) for value in values])
                # The partition is kept its ttl after its last put (Modal's rule).
                conn.execute("UPDATE queue_items SET expires_at = ? WHERE queue = ? AND "
                             "partition = ?", (expires, name, partition))
            self._put.notify_all()
        return {"ok": True}, None

    def queue_get(self, name: str, req: Request) -> Reply:
        count = req.count("n", MAX_ITEMS_PER_GET) or 1
        wait = req.number("wait", least=0, most=MAX_BLOCK_S) or 0.0
        partition = _partition(req)
        deadline = time.monotonic() + wait
        with self._put:
            while True:
                values = self._take(name, partition, count)
                left = deadline - time.monotonic()
                if values or left <= 0:
                    return {"ok": True, "count": len(values)}, pack(values)
                self._put.wait(left)

    def _take(self, name: str, partition: str, count: int) -> list[bytes]:
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT id, value FROM queue_items WHERE queue = ? AND "
                                "partition = ? AND expires_at >= ? ORDER BY id LIMIT ?",
                                (name, partition, time.time(), count)).fetchall()
            conn.executemany("DELETE FROM queue_items WHERE id = ?", [(r[0],) for r in rows])
        return [row[1] for row in rows]

    def queue_peek(self, name: str, req: Request) -> Reply:
        """Items after id ``after``, left in place (``Queue.iterate``)."""
        after = req.count("after") or 0
        count = req.count("n", MAX_ITEMS_PER_GET) or 100
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT id, value FROM queue_items WHERE queue = ? AND "
                                "partition = ? AND id > ? AND expires_at >= ? ORDER BY id "
                                "LIMIT ?", (name, _partition(req), after, time.time(),
                                            count)).fetchall()
        return {"ok": True, "ids": [row[0] for row in rows]}, pack([row[1] for row in rows])

    def queue_len(self, name: str, req: Request) -> Reply:
        where, params = "queue = ? AND expires_at >= ?", [name, time.time()]
        if not req.field("total", bool, False):
            where += " AND partition = ?"
            params.append(_partition(req))
        with self._db.transaction() as conn:
            (count,) = conn.execute(f"SELECT COUNT(*) FROM queue_items WHERE {where}",
                                    params).fetchone()
        return {"ok": True, "len": count}, None

    def queue_clear(self, name: str, req: Request) -> Reply:
        with self._db.transaction() as conn:
            if req.field("all", bool, False):
                conn.execute("DELETE FROM queue_items WHERE queue = ?", (name,))
            else:
                conn.execute("DELETE FROM queue_items WHERE queue = ? AND partition = ?",
                             (name, _partition(req)))
        return {"ok": True}, None


def _drop(conn: sqlite3.Connection, kind: str, name: str) -> bool:
    """Delete an object and its contents; False if there was none."""
    found = conn.execute("DELETE FROM objects WHERE kind = ? AND name = ?",
                         (kind, name)).rowcount
    if kind == DICT:
        conn.execute("DELETE FROM dict_entries WHERE dict = ?", (name,))
    else:
        conn.execute("DELETE FROM queue_items WHERE queue = ?", (name,))
    return bool(found)


def unpack_checked(req: Request) -> list[bytes]:
    try:
        return unpack(req.blob)
    except ValueError as exc:
        raise ApiError(BAD_REQUEST, f"the request's blob is not packed values: {exc}") from None


def _items(req: Request, count: int) -> list[bytes]:
    items = unpack_checked(req)
    if len(items) != count:
        raise ApiError(BAD_REQUEST, f"this action's blob holds {count} packed values, "
                       f"not {len(items)}")
    return items


def _partition(req: Request) -> str:
    """The partition key: "" for the default partition."""
    partition = req.field("partition", str, None)
    if partition is None:
        return ""
    if not partition or len(partition.encode()) > MAX_PARTITION_KEY_BYTES:
        raise ApiError(BAD_REQUEST, f"a partition key must be 1-{MAX_PARTITION_KEY_BYTES} "
                       f"bytes, not {partition!r}")
    return partition


def _common(method: Callable[[Objects, str, Request], Reply]) -> dict[tuple[str, str], Any]:
    return {(kind, method.__name__): method for kind in KINDS}


ACTIONS: dict[tuple[str, str], Action] = {
    **_common(Objects.ls), **_common(Objects.create_ephemeral), **_common(Objects.delete),
    (DICT, "get"): Objects.dict_get, (DICT, "put"): Objects.dict_put,
    (DICT, "update"): Objects.dict_update, (DICT, "pop"): Objects.dict_pop,
    (DICT, "len"): Objects.dict_len, (DICT, "items"): Objects.dict_items,
    (DICT, "clear"): Objects.dict_clear,
    (QUEUE, "put"): Objects.queue_put, (QUEUE, "get"): Objects.queue_get,
    (QUEUE, "peek"): Objects.queue_peek, (QUEUE, "len"): Objects.queue_len,
    (QUEUE, "clear"): Objects.queue_clear,
}
