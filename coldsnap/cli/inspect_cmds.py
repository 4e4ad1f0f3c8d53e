"""``coldsnap apps``, ``logs`` and ``snapshots``: what the server has and does."""

from __future__ import annotations

import argparse
import datetime
import statistics
from typing import Any

from coldsnap.cli.output import ago, millis, print_json, size, table, utc_timestamp
from coldsnap.client import Client
from coldsnap.wire import ops
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.timings import STEP_NAMES, describe_timings


def _request(op: str, **fields: Any) -> dict[str, Any]:
    return Client.default().request(op, **fields)[0]


def cmd_apps_ls(args: argparse.Namespace) -> int:
    apps = _request(ops.APPS_LS)["apps"]
    if args.json:
        print_json(apps)
        return 0
    if not apps:
        print("no apps deployed; deploy one with `coldsnap deploy FILE`")
        return 0
    rows = [[a["name"], a["version"][:12], a["state"] + (" (run)" if a["ephemeral"] else ""),
             str(a["containers"]), str(a["calls"]), ago(a["updated_at"])] for a in apps]
    print(table(rows, ["APP", "VERSION", "STATE", "CONTAINERS", "CALLS", "UPDATED"]))
    return 0


def cmd_apps_stop(args: argparse.Namespace) -> int:
    result = _request(ops.APP_STOP, app=args.app, delete=args.delete)
    print(f"stopped {result['app']}" + (" and deleted it" if args.delete else ""))
    return 0


def cmd_apps_drain(args: argparse.Namespace) -> int:
    result = Client.default().drain(args.app)
    state = "stopped" if result["drained"] else "still stopping (busy with calls)"
    print(f"{result['app']}: containers {state}; the next call cold-boots")
    return 0


def _inputs(fn: dict[str, Any]) -> str:
    """Inputs running per container, and how many one may run: ``3 1 (of 4)``."""
    running = " ".join(str(c.get("inputs", 0)) for c in fn["containers"]) or "-"
    return f"{running} (of {fn.get('max_inputs', 1)})"


def _print_hosts(functions: list[dict[str, Any]]) -> None:
    """On a fleet (docs/fleet.md): how many containers run on each host."""
    hosts: dict[str, int] = {}
    for fn in functions:
        for container in fn["containers"]:
            if container.get("host"):
                hosts[container["host"]] = hosts.get(container["host"], 0) + 1
    if hosts:
        print("\ncontainers by host: " + ", ".join(f"{h} {n}" for h, n in sorted(hosts.items())))


def _print_schedules(schedules: list[dict[str, Any]]) -> None:
    if schedules:
        print("\nschedules:")
        print(table([[s["tag"], s["schedule"], str(s["runs"]), ago(s["last_at"]),
                      s["last_outcome"], _clock(s["next_at"])] for s in schedules],
                    ["FUNCTION", "SCHEDULE", "RUNS", "LAST RUN", "LAST OUTCOME", "NEXT RUN"]))


def _clock(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def cmd_apps_stats(args: argparse.Namespace) -> int:
    stats = _request(ops.APP_STATS, app=args.app)
    stats.pop("ok", None)
    if args.json:
        print_json(stats)
        return 0
    print(f"{stats['app']}: {stats['state']}, version {stats['version'][:12]}")
    rows = []
    for fn in stats["functions"]:
        busy = sum(1 for c in fn["containers"] if c["state"] == "busy")
        rows.append([fn["tag"], fn["version"][:12] + (" (draining)" if fn["draining"] else ""),
                     f"{len(fn['containers'])} ({busy} busy)", _inputs(fn), str(fn["booting"]),
                     str(fn["queued"]), str(fn["calls_ok"]), str(fn["calls_error"]),
                     str(fn["calls_failed"]), str(fn.get("http_requests", 0)),
                     f"{fn['boots_ok']}/{fn['boots_failed']}"])
    if rows:  # OK/ERRORS/FAILED: calls; WEB: requests through the gateway, any status
        print(table(rows, ["FUNCTION", "VERSION", "CONTAINERS", "INPUTS", "BOOTING", "QUEUED", "OK",
                           "ERRORS", "FAILED", "WEB", "BOOTS OK/FAILED"]))
    else:
        print("no containers and no calls since the last deploy or drain")
    _print_hosts(stats["functions"])
    _print_schedules(stats.get("schedules") or [])
    boots = stats["boots"]
    if not boots:
        print("no boots yet")
        return 0
    print("\nboot times, median by kind (ms):")
    by_kind: dict[str, list[dict[str, float]]] = {}
    for boot in boots:
        if boot["ok"]:
            by_kind.setdefault(f"{boot['tag']} {boot['kind']}", []).append(boot["timings"])
    steps = ["boot_s", *STEP_NAMES]  # the whole boot, then its steps in boot order
    summary = []
    for kind, timings in sorted(by_kind.items()):
        cells = []
        for step in steps:
            values = [t[step] for t in timings if step in t]
            cells.append(millis(statistics.median(values)) if values else "-")
        summary.append([kind, str(len(timings)), *cells])
    print(table(summary, ["FUNCTION KIND", "N", "TOTAL",
                          *(label.upper() for label in STEP_NAMES.values())]))
    print("\nlast boots:")
    for boot in boots[:10]:
        detail = describe_timings(boot["timings"]) if boot["ok"] else boot["error"]
        host = f" on host {boot['host']}" if boot.get("host") else ""
        print(f"  {ago(boot['created_at']):>8}  {boot['container_id']}  {boot['tag']}  "
              f"{boot['kind']}{host}: {detail}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    conn = Client.default()
    fields = {"app": args.app, "tail": args.lines, "timestamps": args.timestamps}
    if not args.follow:
        for line in _log_lines(conn.request(ops.LOGS, **fields)[0], args.timestamps):
            print(line)
        return 0
    try:
        for message in conn.stream(ops.LOGS, follow=True, **fields):
            for line in _log_lines(message, args.timestamps):
                print(line, flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def _log_lines(reply: dict[str, Any], timestamps: bool) -> list[str]:
    lines: list[str] = reply["lines"]
    if not timestamps:
        return lines
    times = reply.get("times")
    if times is None or len(times) != len(lines):
        raise InvalidError("the server sent no timestamps: it runs an older coldsnap; "
                           "restart it (`coldsnap serve`) or drop --timestamps")
    return [f"{utc_timestamp(t)} {line}" for t, line in zip(times, lines, strict=True)]


def cmd_snapshots_ls(args: argparse.Namespace) -> int:
    reply = _request(ops.SNAPSHOTS_LS)
    snapshots = reply["snapshots"]
    if args.json:
        print_json(snapshots)
        return 0
    if not snapshots:
        print("no memory snapshots yet: they are made by the first cold boot of a function "
              "with enable_memory_snapshot=True")
        return 0
    rows = [[s["key"], f"{s.get('app') or '?'}/{s.get('tag') or '?'}", s.get("status", ""),
             (s.get("host_key") or "")[:12], size(s.get("size_bytes")), millis(s.get("dump_s")),
             ago(s.get("created_at")), str(s.get("restores", 0)),
             _short_error(s.get("last_error"))]
            for s in snapshots]
    print(table(rows, ["KEY", "FUNCTION", "STATUS", "HOST KEY", "SIZE", "DUMP", "CREATED",
                       "RESTORES", "LAST ERROR"]))
    if "disk_bytes" in reply:
        ready = sum(1 for s in snapshots if s.get("status") == "ready")
        failed = sum(1 for s in snapshots if s.get("status") == "failed")
        retrying = sum(1 for s in snapshots if s.get("status") == "retrying")
        print(f"\n{ready} snapshot(s)" + (f", {failed} failed key(s)" if failed else "")
              + (f", {retrying} key(s) to retry" if retrying else "")
              + f"; the store uses {size(reply['disk_bytes'])} in {reply['store']}")
    if any(s.get("last_error") for s in snapshots):
        print("a key with a LAST ERROR boots without a snapshot (a transient error: for a "
              "while); `coldsnap snapshots rm KEY` clears it so the next cold boot tries again")
    return 0


def _short_error(error: str | None, width: int = 60) -> str:
    """The first line of ``error`` cut to ``width``, keeping a "(transient: ...)" tail."""
    line = (error or "-").splitlines()[0]
    head, marker, tail = line.rpartition(" (transient: ")
    if len(line) <= width or not marker:
        return line[:width]
    tail = marker + tail
    return head[:max(width - len(tail) - 1, 10)] + "…" + tail


def cmd_snapshots_rm(args: argparse.Namespace) -> int:
    reply = _request(ops.SNAPSHOT_RM, key=args.key)
    if reply.get("snapshot_removed"):
        print(f"removed snapshot {args.key}")
    if reply.get("failure_cleared"):
        print(f"cleared the failure of {args.key}: the next cold boot of its function tries "
              "a memory snapshot again")
    return 0


def cmd_snapshots_gc(args: argparse.Namespace) -> int:
    reply = _request(ops.SNAPSHOTS_GC, keep=args.keep)
    result, quarantine = reply["result"], reply.get("quarantine") or {}
    if args.json:
        print_json(result)
        return 0
    line = f"removed {len(result or [])} snapshot(s)"
    if quarantine.get("removed"):
        line += (f" and {quarantine['removed']} quarantined one(s) "
                 f"({size(quarantine.get('bytes', 0))})")
    print(line)
    return 0


def cmd_snapshots_verify(args: argparse.Namespace) -> int:
    """Exit status 1 when any snapshot checked is damaged (it was quarantined)."""
    results = _request(ops.SNAPSHOTS_VERIFY, key=args.key)["results"]
    if args.json:
        print_json(results)
    elif not results:
        print("no memory snapshots to verify")
    else:
        for r in results:
            print(_verify_line(r))
    return 0 if all(r["ok"] for r in results) else 1


def _verify_line(result: dict[str, Any]) -> str:
    if result["ok"]:
        return f"ok       {result['key']}" + (
            "" if result.get("digests") else " (sizes only: made before digests were kept)")
    where = f" to {result['quarantined_to']}" if result.get("quarantined_to") else ""
    return (f"damaged  {result['key']}: {result['problem']}; quarantined{where}: the next "
            "cold boot of its function makes a new snapshot")
