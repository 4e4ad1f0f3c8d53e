"""What `apps ls` and `apps stats` show: read-only views over apps, pools and boots."""

from __future__ import annotations

from typing import Any

from coldsnap.server.deploys import Deploys
from coldsnap.server.pools import Pools
from coldsnap.server.state import StateDB


class Reports:
    """Apps with their container and call counts; one app's functions and boots."""

    def __init__(self, db: StateDB, deploys: Deploys, pools: Pools) -> None:
        self.db = db
        self.deploys = deploys
        self.pools = pools

    def apps(self) -> list[dict[str, Any]]:
        rows = []
        pools = self.pools.all()
        for row in self.db.apps():
            stats = [p.stats() for p in pools if p.fn.app == row["name"]]
            rows.append({
                "name": row["name"], "version": row["version"], "state": row["state"],
                "ephemeral": bool(row["ephemeral"]), "updated_at": row["updated_at"],
                "containers": sum(len(s["containers"]) for s in stats),
                "calls": sum(s["calls_ok"] + s["calls_error"] + s["calls_failed"]
                             for s in stats),
            })
        return rows

    def stats(self, app: str) -> dict[str, Any]:
        state, version = self.deploys.state(app)
        return {"app": app, "state": state, "version": version,
                "functions": [p.stats() for p in self.pools.of_app(app)],
                "boots": self.db.boots(app)}
