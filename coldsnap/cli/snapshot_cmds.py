"""``coldsnap snapshots inspect KEY`` and ``snapshots why APP [FUNCTION]``: one
snapshot in detail (its warnings first), and why a function's snapshot was made
again. Both print text for a person, or ``--json``."""

from __future__ import annotations

import argparse
from typing import Any

from coldsnap.cli.output import ago, millis, print_json, size
from coldsnap.client import Client
from coldsnap.wire import ops


def add_parsers(snapshots: Any) -> None:
    """The ``inspect`` and ``why`` subcommands of ``coldsnap snapshots``."""
    inspect = snapshots.add_parser("inspect", help="show one snapshot, with its warnings")
    inspect.add_argument("key")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    why = snapshots.add_parser("why", help="why a function's current snapshot was made: "
                               "what changed since the previous one")
    why.add_argument("app")
    why.add_argument("function", nargs="?", help="one function or class (default: each "
                     "that has a snapshot)")
    why.add_argument("--json", action="store_true", help="print JSON")


def cmd_snapshots_inspect(args: argparse.Namespace) -> int:
    snapshot = Client.default().request(ops.SNAPSHOT_INSPECT, key=args.key)[0]["snapshot"]
    if args.json:
        print_json(snapshot)
        return 0
    labels = snapshot.get("labels") or {}
    app = snapshot.get("app") or labels.get("app", "?")
    function = snapshot.get("tag") or labels.get("function", "?")
    print(f"snapshot {snapshot['key']} of {app}/{function} "
          f"(version {str(labels.get('version', '?'))[:12]})")
    if labels.get("app") and labels["app"] != app:
        print(f"  made by   {labels['app']} (a `coldsnap run` copy of the same version)")
    print(f"  host key  {snapshot.get('host_key')}  (CRIU {snapshot.get('criu_version', '?')})")
    print(f"  made      {ago(snapshot.get('created_at'))}, dump "
          f"{millis(snapshot.get('dump_s'))}, {size(snapshot.get('size_bytes'))}")
    if snapshot.get("fetched_from"):  # made by another host sharing the store
        print(f"  fetched   from {snapshot['fetched_from']} (made on another host)")
    print(f"  restores  {snapshot.get('restores', 0)}")
    print(f"  path      {snapshot.get('path')}")
    check = snapshot.get("last_check")
    print(f"  checked   {_check_text(check)}")
    if snapshot.get("last_error"):
        print(f"  failed    {snapshot['last_error'].splitlines()[0]}")
    warnings = snapshot.get("warnings") or []
    print(f"warnings ({len(warnings)}):" if warnings else "warnings: none")
    for warning in warnings:
        print(f"  [{warning['kind']}] {warning['message']}")
    return 0


def _check_text(check: dict[str, Any] | None) -> str:
    """The last digest check: ``ok, by restore, 5 s ago`` or ``damaged, ...: why``."""
    if not check:
        return "not yet against its digests (each restore and `snapshots verify` do)"
    how = f"{'ok' if check['ok'] else 'damaged'}, by {check['by']}, {ago(check['at'])}"
    return how if check["ok"] else f"{how}: {check.get('detail')}"


def cmd_snapshots_why(args: argparse.Namespace) -> int:
    reply = Client.default().request(ops.SNAPSHOTS_WHY, app=args.app, function=args.function)[0]
    if args.json:
        print_json(reply["functions"])
        return 0
    print("\n\n".join(explanation_text(one) for one in reply["functions"]))
    return 0


def explanation_text(why: dict[str, Any]) -> str:
    current, previous = why["current"], why["previous"]
    lines = [f"{why['app']}/{why['function']}: snapshot {current['key']} "
             f"(made {_made(why, current)})"]
    if previous is None:
        lines.append("  the first snapshot of this function on this server: nothing to "
                     "compare it with")
        return "\n".join(lines)
    lines.append(f"  previous: {previous['key']} (made {_made(why, previous)})")
    endings = [f"{_ENDED.get(e['event'], e['event'])}"
               + (f" ({e['detail']})" if e.get("detail") else "")
               for e in why["previous_ended"]]
    if why["same_inputs"]:
        because = "; then ".join(endings) or (
            "nothing recorded what became of it (was the store cleaned by hand?)")
        lines.append(f"  same inputs, re-created because: the previous one {because}")
        return "\n".join(lines)
    lines.append("  what changed:")
    for change in why["changes"]:
        lines.append(f"    {change['summary']}")
        lines += [f"      {line}" for line in (change.get("diff") or "").splitlines()]
    if endings:
        lines.append(f"  the previous one also {'; then '.join(endings)}")
    return "\n".join(lines)


def _made(why: dict[str, Any], snapshot: dict[str, Any]) -> str:
    """``5 s ago``, and ``by APP`` when another app of the same source made it."""
    by = snapshot.get("made_by")
    return ago(snapshot["created_at"]) + (f" by {by}" if by and by != why["app"] else "")


_ENDED = {"failed": "failed", "quarantined": "was quarantined", "removed": "was removed"}
