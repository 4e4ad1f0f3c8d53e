"""``coldsnap secret create|list|ls|rm``: the server's named secrets (values never shown)."""

from __future__ import annotations

import argparse
from typing import Any

from coldsnap.cli.output import ago, print_json, table
from coldsnap.client import Client
from coldsnap.wire import ops
from coldsnap.wire.errors import InvalidError


def _request(op: str, **fields: Any) -> dict[str, Any]:
    return Client.default().request(op, **fields)[0]


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments as a dict; InvalidError names a malformed one."""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidError(f"{pair!r} is not KEY=VALUE; e.g. "
                               "`coldsnap secret create my-secret API_KEY=abc123`")
        values[key] = value
    return values


def cmd_create(args: argparse.Namespace) -> int:
    result = _request(ops.SECRET_CREATE, name=args.name, values=parse_pairs(args.pairs),
                      force=args.force)
    verb = "replaced" if result.get("replaced") else "created"
    print(f"{verb} secret {args.name} with keys {', '.join(result['keys'])}; use it with "
          f"secrets=[coldsnap.Secret.from_name({args.name!r})]")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    secrets = _request(ops.SECRET_LIST)["secrets"]
    if args.json:
        print_json(secrets)
    elif not secrets:
        print("no secrets; create one with `coldsnap secret create NAME KEY=VALUE ...`")
    else:
        print(table([[s["name"], ", ".join(s["keys"]), ago(s["created_at"])] for s in secrets],
                    ["SECRET", "KEYS", "UPDATED"]))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    _request(ops.SECRET_DELETE, name=args.name)
    print(f"removed secret {args.name}")
    return 0


# Modal's names (list, delete) and the short ones.
COMMANDS = {"create": cmd_create, "list": cmd_list, "ls": cmd_list, "rm": cmd_rm,
            "delete": cmd_rm}


def add_parsers(sub: Any) -> None:
    secret = sub.add_parser("secret", help="secrets: env variables for functions").add_subparsers(
        dest="secret_command", required=True, metavar="create|ls|rm")
    create = secret.add_parser("create", help="create a secret from KEY=VALUE pairs")
    create.add_argument("name")
    create.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    create.add_argument("--force", action="store_true", help="replace an existing secret")
    for name in ("ls", "list"):
        secret.add_parser(name, help="list secrets (names and keys, never values)"
                          ).add_argument("--json", action="store_true")
    for name in ("rm", "delete"):
        secret.add_parser(name, help="delete a secret").add_argument("name")
