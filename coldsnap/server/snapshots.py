"""The snapshot admin: what `coldsnap snapshots ls|inspect|rm|gc|verify|why` asks of the
server.

It reads the engine's store (the snapshots and the one record of each key's
failure), the database (which app and function a key belongs to, how often it
was restored) and ``SnapshotKeys`` (transient failures, kept in memory).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from coldsnap.engine import Engine
from coldsnap.engine.store import SnapshotStore, check_key
from coldsnap.server.errors import ApiError
from coldsnap.server.snapshot_checks import BY_VERIFY, SnapshotCheck, SnapshotChecks
from coldsnap.server.snapshot_history import QUARANTINED, REMOVED, SnapshotHistory
from coldsnap.server.snapshot_keys import SnapshotKeys
from coldsnap.server.snapshot_why import explain
from coldsnap.server.state import StateDB
from coldsnap.settings import Settings
from coldsnap.wire.errors import BAD_REQUEST, NOT_FOUND, UNAVAILABLE

logger = logging.getLogger(__name__)


class SnapshotAdmin:
    """List, inspect, delete and garbage-collect this host's snapshots.

    Each method answers one socket API op (api.py); errors are ``ApiError`` with
    the message a user sees. With the ``none`` engine there is no store, and every
    method says so.
    """

    def __init__(self, settings: Settings, engine: Engine, db: StateDB,
                 keys: SnapshotKeys) -> None:
        self.settings = settings
        self.engine = engine
        self.db = db
        self.keys = keys
        self.history = SnapshotHistory(db)  # `why` reads it; rm, verify and gc add to it
        self.checks = SnapshotChecks(db)  # the last digest check of each key

    def ls(self) -> list[dict[str, Any]]:
        """Every snapshot in the store, then every failed key without one, then every
        key whose dump failed transiently (status ``retrying``)."""
        store = self._store()
        known = self.db.snapshot_keys()
        failures = store.failures()
        checks = self.checks.last()
        rows = []
        for info in store.list():
            row = _jsonable(info)
            meta = known.get(info.key, {})
            failure = failures.pop(info.key, None)
            # A snapshot on disk whose key failed (a restored copy died, CRIU refused
            # it) is not restored: it says so, as a failed key without one does.
            row.update(app=meta.get("app"), tag=meta.get("tag"),
                       restores=meta.get("restores", 0),
                       last_error=(failure.reason if failure
                                   else self.keys.transient_error(info.key)),
                       status="failed" if failure else "ready",
                       last_check=_check_of(checks.get(info.key), info.created_at))
            rows.append(row)
        for key, failure in sorted(failures.items(), key=lambda item: item[1].at):
            meta = known.get(key, {})
            rows.append({"key": key, "app": meta.get("app"), "tag": meta.get("tag"),
                         "host_key": self.engine.host_key, "status": "failed",
                         "restores": meta.get("restores", 0), "last_error": failure.reason,
                         "size_bytes": 0, "created_at": failure.at})
        listed = {row["key"] for row in rows}
        for key, error in sorted(self.keys.dumps.errors().items()):
            if key not in listed:
                meta = known.get(key, {})
                rows.append({"key": key, "app": meta.get("app"), "tag": meta.get("tag"),
                             "host_key": self.engine.host_key, "status": "retrying",
                             "restores": meta.get("restores", 0), "last_error": error,
                             "size_bytes": 0, "created_at": None})
        return rows

    def usage(self) -> dict[str, Any]:
        store = self._store()
        return {"disk_bytes": store.disk_usage(), "store": str(store.root)}

    def inspect(self, key: str) -> dict[str, Any]:
        store = self._store()
        detail = store.inspect(_checked(key))
        if detail is None:
            error = store.failure(key)
            if error:
                raise ApiError(NOT_FOUND, f"no snapshot {key} on this host: making one failed "
                               f"({error.splitlines()[0]}); `coldsnap snapshots rm {key}` "
                               "clears the failure so the next cold boot tries again")
            raise ApiError(NOT_FOUND, f"no snapshot {key} on this host; "
                           "`coldsnap snapshots ls` lists them")
        # Served restores: the database counts them. Its app is the one that last booted
        # from the key (a `coldsnap run` copy made it, `deploy` of the same version uses
        # it), as `snapshots ls` says; the labels keep the app that made it.
        known = self.db.snapshot_keys().get(key, {})
        detail["restores"] = known.get("restores", 0)
        detail.update(app=known.get("app"), tag=known.get("tag"))
        detail["last_check"] = _check_of(self.checks.last().get(key),
                                         detail.get("created_at", 0.0))
        return _jsonable(detail)

    def rm(self, key: str) -> dict[str, Any]:
        """Delete ``key``'s snapshot and forget its failure: the next cold boot tries again."""
        store = self._store()
        removed = store.get(_checked(key)) is not None
        forgotten = store.failure(key) is not None
        store.delete(key)  # the snapshot and its failure record
        forgotten = self.keys.forget(key) or forgotten
        if removed:
            self.history.ended(key, REMOVED, "by `coldsnap snapshots rm`")
        self.engine.snapshots_deleted()  # their layers go too
        if not (removed or forgotten):
            raise ApiError(NOT_FOUND, f"no snapshot or failure record named {key!r} on this "
                           "host; `coldsnap snapshots ls` lists the keys")
        return {"snapshot_removed": removed, "failure_cleared": forgotten}

    def verify(self, key: str | None = None) -> list[dict[str, Any]]:
        """Check ``key``'s snapshot (default: every one of this host) against the sizes
        and digests taken when it was made. A damaged one is quarantined, as a restore
        would: its key is not marked failed, so the next cold boot makes a new one."""
        store = self._store()
        if key is not None:
            info = store.get(_checked(key))
            if info is None:
                raise ApiError(NOT_FOUND, f"no snapshot {key} on this host; "
                               "`coldsnap snapshots ls` lists them")
            infos = [info]
        else:
            infos = [i for i in store.list() if i.host_key == self.engine.host_key]
        rows = []
        for info in infos:
            damage = store.verify(info)
            row: dict[str, Any] = {"key": info.key, "ok": damage is None,
                                   "digests": "digests" in info.extra}
            self.checks.record(info.key, damage is None, BY_VERIFY,
                               None if damage is None else str(damage))
            if damage is not None:
                where = store.quarantine(info.key, str(damage))
                self.history.ended(info.key, QUARANTINED, f"by `coldsnap snapshots verify`: "
                                   f"{damage}")
                row.update(file=damage.file, problem=str(damage),
                           quarantined_to=str(where) if where else None)
                logger.warning("snapshot %s is damaged: %s; quarantined to %s", info.key,
                               damage, where)
            rows.append(row)
        if any(not row["ok"] for row in rows):
            self.engine.snapshots_deleted()  # the quarantined ones' layers go
        return rows

    def gc(self, keep: int | None = None) -> tuple[list[str], dict[str, int]]:
        """Delete all but the newest ``keep`` snapshots of each (app, function), and the
        quarantined ones; the deleted keys, and how many quarantined snapshots went
        (``{"removed": N, "bytes": B}``). ``keep`` defaults to ``keep_versions``."""
        store = self._store()
        if keep is not None and keep < 0:
            raise ApiError(BAD_REQUEST, f"keep must be 0 or more, not {keep}")
        removed = store.gc(self.settings.keep_versions if keep is None else keep)
        for key in removed:
            self.history.ended(key, REMOVED, "by `coldsnap snapshots gc`")
        count, size = store.clear_quarantine()
        self.engine.snapshots_deleted()
        return removed, {"removed": count, "bytes": size}

    def why(self, app: str, tag: str | None = None) -> list[dict[str, Any]]:
        """Why the current snapshot of each of ``app``'s functions (or ``tag``'s) was
        made: what changed since the previous one, or what happened to it."""
        self._store()
        return explain(self.history, self.db, app, tag)

    def _store(self) -> SnapshotStore:
        store = self.engine.store
        if store is None:
            raise ApiError(UNAVAILABLE, f"snapshots are not available with engine "
                           f"{self.engine.name!r}: it boots every container without one. "
                           "Run `coldsnap doctor`, then start the server with "
                           "COLDSNAP_ENGINE=criu")
        return store


def _check_of(check: SnapshotCheck | None, created_at: float) -> dict[str, Any] | None:
    """``check`` as JSON if it checked this snapshot: one made again under the same key
    after a damaged one was quarantined starts unchecked."""
    return check.to_dict() if check is not None and check.at >= created_at else None


def _checked(key: str) -> str:
    try:
        return check_key(key)
    except ValueError as exc:
        raise ApiError(BAD_REQUEST, str(exc)) from None


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
