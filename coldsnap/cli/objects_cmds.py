"""``coldsnap dict ls|get|clear`` and ``coldsnap queue ls|len|clear``: Dicts and Queues
as the server keeps them (docs/objects.md)."""

from __future__ import annotations

import argparse
from typing import Any

from coldsnap.cli.output import ago, print_json, table
from coldsnap.client import Client
from coldsnap.dict_queue import Dict, Queue
from coldsnap.wire import ops
from coldsnap.wire.objects import DICT, QUEUE


def add_parsers(sub: Any) -> None:
    """The ``dict`` and ``queue`` command groups."""
    dicts = sub.add_parser("dict", help="Dicts (coldsnap.Dict)").add_subparsers(
        dest="dict_command", required=True, metavar="ls|list|get|clear")
    _json(dicts.add_parser("ls", aliases=["list"], help="list named Dicts"))
    get = dicts.add_parser("get", help="print one key's value (the key as a string)")
    get.add_argument("name")
    get.add_argument("key")
    dicts.add_parser("clear", help="remove every key").add_argument("name")
    queues = sub.add_parser("queue", help="Queues (coldsnap.Queue)").add_subparsers(
        dest="queue_command", required=True, metavar="ls|list|len|clear")
    _json(queues.add_parser("ls", aliases=["list"], help="list named Queues"))
    length = queues.add_parser("len", help="how many items a partition holds")
    length.add_argument("name")
    length.add_argument("--partition", help="one partition (default: the default one)")
    length.add_argument("--total", action="store_true", help="all partitions together")
    clear = queues.add_parser("clear", help="remove a partition's items")
    clear.add_argument("name")
    clear.add_argument("--partition", help="one partition (default: the default one)")
    clear.add_argument("--all", action="store_true", help="every partition")


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _ls(kind: str, args: argparse.Namespace) -> int:
    found = Client.default().request(ops.OBJECT, kind=kind, action="ls")[0]["objects"]
    if args.json:
        print_json(found)
        return 0
    what = "keys" if kind == DICT else "items"
    if not found:
        print(f"no {kind}s; make one with coldsnap.{kind.capitalize()}.from_name(NAME, "
              "create_if_missing=True)")
        return 0
    print(table([[o["name"], str(o["count"]), ago(o["created_at"])] for o in found],
                ["NAME", what.upper(), "CREATED"]))
    return 0


def cmd_dict_ls(args: argparse.Namespace) -> int:
    return _ls(DICT, args)


def cmd_dict_get(args: argparse.Namespace) -> int:
    d = Dict.from_name(args.name)
    if args.key not in d:
        print(f"error: Dict {args.name!r} has no key {args.key!r}")
        return 1
    print(repr(d[args.key]))
    return 0


def cmd_dict_clear(args: argparse.Namespace) -> int:
    Dict.from_name(args.name).clear()
    print(f"cleared Dict {args.name}")
    return 0


def cmd_queue_ls(args: argparse.Namespace) -> int:
    return _ls(QUEUE, args)


def cmd_queue_len(args: argparse.Namespace) -> int:
    print(Queue.from_name(args.name).len(partition=args.partition, total=args.total))
    return 0


def cmd_queue_clear(args: argparse.Namespace) -> int:
    Queue.from_name(args.name).clear(partition=args.partition, all=args.all)
    print(f"cleared Queue {args.name}" + (" (all partitions)" if args.all else ""))
    return 0


COMMANDS = {
    "dict ls": cmd_dict_ls, "dict list": cmd_dict_ls, "dict get": cmd_dict_get,
    "dict clear": cmd_dict_clear,
    "queue ls": cmd_queue_ls, "queue list": cmd_queue_ls, "queue len": cmd_queue_len,
    "queue clear": cmd_queue_clear,
}
