"""``coldsnap sandbox ls|terminate``: the server's sandboxes (docs/sandboxes.md)."""

from __future__ import annotations

import argparse
from typing import Any

from coldsnap.cli.output import ago, print_json, table
from coldsnap.client import Client
from coldsnap.wire import sandbox as wire


def _request(op: str, **fields: Any) -> dict[str, Any]:
    return Client.default().request(op, **fields)[0]


def _state(info: dict[str, Any]) -> str:
    if info["returncode"] is None:
        return "running"
    if info["ended_by"] in (wire.TERMINATED, wire.TIMED_OUT):
        return str(info["ended_by"])
    return f"exited {info['returncode']}"


def cmd_ls(args: argparse.Namespace) -> int:
    sandboxes = _request(wire.SANDBOX_LIST, app=args.app)["sandboxes"]
    if args.json:
        print_json(sandboxes)
    elif not sandboxes:
        print("no sandboxes; make one with coldsnap.Sandbox.create(app=...)")
    else:
        rows = [[s["sandbox_id"], s["app"], s["name"] or "-", _state(s), ago(s["created_at"]),
                 s["container_id"]] for s in sandboxes]
        print(table(rows, ["SANDBOX", "APP", "NAME", "STATE", "CREATED", "CONTAINER"]))
    return 0


def cmd_terminate(args: argparse.Namespace) -> int:
    _request(wire.SANDBOX_TERMINATE, sandbox_id=args.sandbox_id)
    print(f"terminated sandbox {args.sandbox_id}")
    return 0


COMMANDS = {"ls": cmd_ls, "list": cmd_ls, "terminate": cmd_terminate, "stop": cmd_terminate}


def add_parsers(sub: Any) -> None:
    sandbox = sub.add_parser("sandbox", help="sandboxes: containers made with "
                             "Sandbox.create()").add_subparsers(
        dest="sandbox_command", required=True, metavar="ls|terminate")
    for name in ("ls", "list"):
        ls = sandbox.add_parser(name, help="list sandboxes (running, and recently ended)")
        ls.add_argument("--app", help="only this app's")
        ls.add_argument("--json", action="store_true", help="print JSON for scripts")
    for name in ("terminate", "stop"):
        sandbox.add_parser(name, help="kill a sandbox").add_argument("sandbox_id")
