"""`coldsnap snapshots ls` on a fleet: the snapshots each host keeps in its own store.

On a fleet (``serve --cluster``) the control plane dumps and restores nothing itself:
each host agent keeps the snapshots it made or fetched in its own store. The API's
``snapshots_ls`` adds one row per snapshot of every remote host, with a ``host`` field,
to the control plane's own rows; a host that does not answer is named, not skipped.
The agent side is ``store_listing`` (host_agent.py's ``snapshots``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from coldsnap.engine import Engine
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.fleet import Fleet
from coldsnap.server.fleet.bridge import HostLost
from coldsnap.server.state import StateDB


def store_listing(store: SnapshotStore | None) -> dict[str, Any] | None:
    """One host's snapshots, failed keys and disk use, as plain data; None: no store
    (engine ``none``)."""
    if store is None:
        return None
    return {"snapshots": [_plain(info) for info in store.list()],
            "failed": {key: {"reason": f.reason, "at": f.at}
                       for key, f in store.failures().items()},
            "disk_bytes": store.disk_usage(), "store": str(store.root)}


def on_hosts(engine: Engine, db: StateDB) -> dict[str, Any]:
    """``snapshots`` rows of the fleet's remote hosts and ``hosts``, a line per host (its
    disk use, or why it did not answer); empty on a single host."""
    if not isinstance(engine, Fleet):
        return {}
    remote = [agent for agent in engine.agents if agent.store is None]
    if not remote:  # a single host: its store is the control plane's (SnapshotAdmin)
        return {}
    known = db.snapshot_keys()
    rows: list[dict[str, Any]] = []
    hosts = []
    for agent in sorted(remote, key=lambda a: a.host):
        try:
            listing = agent.snapshots()
        except HostLost as exc:
            hosts.append({"host": agent.host, "error": str(exc)})
            continue
        if listing is None:
            hosts.append({"host": agent.host, "error": "its engine keeps no snapshots"})
            continue
        hosts.append({"host": agent.host, "host_key": agent.host_key,
                      "disk_bytes": listing["disk_bytes"], "store": listing["store"]})
        rows += _rows(agent.host, listing, known)
    return {"snapshots": rows, "hosts": hosts}


def _rows(host: str, listing: dict[str, Any], known: dict[str, dict[str, Any]]
          ) -> list[dict[str, Any]]:
    failed = dict(listing["failed"])
    rows = []
    for info in listing["snapshots"]:
        failure = failed.pop(info["key"], None)
        rows.append({**info, **_meta(known, info["key"]), "host": host,
                     "status": "failed" if failure else "ready",
                     "last_error": failure["reason"] if failure else None})
    for key, failure in failed.items():  # a failed key without a snapshot
        rows.append({"key": key, **_meta(known, key), "host": host, "status": "failed",
                     "last_error": failure["reason"], "created_at": failure["at"]})
    return rows


def _meta(known: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    meta = known.get(key, {})
    return {"app": meta.get("app"), "tag": meta.get("tag"), "restores": meta.get("restores", 0)}


def _plain(info: Any) -> dict[str, Any]:
    """A SnapshotInfo as JSON has it (paths as strings): what crosses to the control plane."""
    row: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(info), default=str))
    return row
