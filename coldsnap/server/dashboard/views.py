"""What the dashboard's pages show, read from the server's own parts: the same
reports `apps ls`, `apps stats`, `snapshots ls` and `logs` answer from
(``Platform.reports``, ``.snapshots``, ``.logs``), plus each app's versions.

Each function returns plain data for a template; nothing here writes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from coldsnap.server.errors import ApiError
from coldsnap.server.platform import Platform
from coldsnap.wire.timings import STEP_NAMES

RATE_WINDOW_S = 60.0
LOG_TAIL = 200
BOOTS_PER_APP = 50
# Boots drawn in the plot, by the series they belong to: a snapshot-creating boot pays
# the dump, so it is neither a cold nor a restored one.
SERIES = {"plain": "cold", "fallback": "cold", "restored": "restored",
          "snapshot-created": "snapshot-creating"}


class CallRates:
    """Calls per minute of each function, from the pools' counters as sampled at each
    look (no sampler runs when nobody looks): the change over the last minute."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: dict[tuple[str, ...], deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def per_minute(self, key: tuple[str, ...], total: int,
                   now: float | None = None) -> float | None:
        """None at the first look: one sample has no rate yet."""
        now = time.monotonic() if now is None else now
        with self._lock:
            samples = self._samples.setdefault(key, deque())
            samples.append((now, total))
            while len(samples) > 2 and samples[1][0] <= now - self.window_s:
                samples.popleft()
            first_at, first_total = samples[0]
        span = now - first_at
        return None if span <= 0 else (total - first_total) * 60.0 / span


def apps(platform: Platform) -> list[dict[str, Any]]:
    """`apps ls`'s rows, each with its versions (newest first)."""
    rows = platform.reports.apps()
    for row in rows:
        row["versions"] = platform.db.versions_of(row["name"])
    return rows


def functions(platform: Platform, rates: CallRates) -> list[dict[str, Any]]:
    """Every function version's pool: containers by state, queue, calls per minute."""
    rows = []
    for pool in platform.pools.all():
        stats = pool.stats()
        containers = stats["containers"]
        calls = stats["calls_ok"] + stats["calls_error"] + stats["calls_failed"]
        stats.update(
            idle=sum(1 for c in containers if c["state"] == "idle"),
            busy=sum(1 for c in containers if c["state"] == "busy"),
            host=platform.engine.host_key, calls=calls,
            rate=rates.per_minute((stats["app"], stats["tag"], stats["version"]), calls))
        rows.append(stats)
    return sorted(rows, key=lambda r: (r["app"], r["tag"], r["version"]))


def boots(platform: Platform, app: str | None = None) -> list[dict[str, Any]]:
    """The newest boots of every app (or of ``app``), newest first, each with its steps
    in boot order (``steps``: (label, ms)) and its plot series."""
    names = [app] if app else [row["name"] for row in platform.db.apps()]
    rows = [boot for name in names for boot in platform.db.boots(name, BOOTS_PER_APP)]
    rows.sort(key=lambda b: b["created_at"], reverse=True)
    for boot in rows:
        timings = boot["timings"]
        boot["total_ms"] = round(timings.get("boot_s", 0.0) * 1000, 1)
        boot["steps"] = [(label, round(timings[name] * 1000, 1))
                         for name, label in STEP_NAMES.items() if name in timings]
        boot["series"] = SERIES.get(boot["kind"])
    return rows


def boot_points(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """The plot's data: per series, (time in ms since the epoch, boot seconds), oldest
    first, for Chart.js's scatter chart."""
    points: dict[str, list[dict[str, float]]] = {name: [] for name in
                                                 dict.fromkeys(SERIES.values())}
    for boot in reversed(rows):
        if boot["ok"] and boot["series"] and "boot_s" in boot["timings"]:
            points[boot["series"]].append({"x": boot["created_at"] * 1000,
                                           "y": boot["timings"]["boot_s"]})
    return points


def snapshots(platform: Platform) -> tuple[list[dict[str, Any]], str | None]:
    """`snapshots ls`'s rows, and why there are none when the engine keeps none."""
    try:
        rows = platform.snapshots.ls()
    except ApiError as exc:  # the none engine: no store
        return [], exc.message
    for row in rows:
        extra = row.get("extra") or {}
        row["warnings"] = extra.get("warnings") or []
        row["verify"], row["verify_state"] = verify_status(row.get("last_check"),
                                                           "digests" in extra)
    return rows, None


def verify_status(check: dict[str, Any] | None, digests: bool) -> tuple[str, str]:
    """What the snapshots page says of a snapshot's last digest check, and its state
    (``ok``, ``damaged``, ``unchecked``, ``no-digests``). Each restore checks the files
    against the digests taken at the dump; `snapshots verify` checks them all."""
    if check is None:
        return (("not checked yet", "unchecked") if digests else
                ("no digests (made before they were kept): sizes only", "no-digests"))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(check["at"]))
    if check["ok"]:
        return f"ok at {when} (by {check['by']})", "ok"
    return f"damaged at {when} (by {check['by']}): {check['detail']}", "damaged"


def log_tail(platform: Platform, app: str) -> list[dict[str, Any]]:
    platform.deploys.require(app)  # ApiError for an unknown app, as `coldsnap logs`
    lines, _ = platform.logs.app(app).tail_timed(LOG_TAIL)
    return [{"time": line.time, "text": line.text} for line in lines]
