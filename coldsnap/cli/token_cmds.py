"""``coldsnap token create|ls|rm``: proxy-auth tokens of web endpoints (docs/web.md)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from coldsnap.cli.output import print_json, table
from coldsnap.client import Client
from coldsnap.wire import ops
from coldsnap.wire.web import KEY_HEADER, SECRET_HEADER


def add_parser(sub: Any) -> None:
    tokens = sub.add_parser("token", help="proxy-auth tokens for web endpoints with "
                            "requires_proxy_auth=True").add_subparsers(
        dest="token_command", required=True, metavar="create|ls|list|rm")
    create = tokens.add_parser("create", help="make a token; its secret is shown once")
    create.add_argument("--name", default="", help="a note to tell tokens apart")
    create.add_argument("--json", action="store_true", help="print JSON")
    ls = tokens.add_parser("ls", aliases=["list"],
                           help="list tokens (their keys, never their secrets)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    tokens.add_parser("rm", help="delete a token: requests with it get 401").add_argument("key")


def cmd_token_create(args: argparse.Namespace) -> int:
    reply = Client.default().request(ops.TOKEN_CREATE, name=args.name)[0]
    if args.json:
        print_json({"key": reply["key"], "secret": reply["secret"]})
        return 0
    print(f"token key:    {reply['key']}\ntoken secret: {reply['secret']}  (shown only now)")
    print(f"send them as headers: {KEY_HEADER}: {reply['key']}  {SECRET_HEADER}: "
          f"{reply['secret']}")
    return 0


def cmd_token_ls(args: argparse.Namespace) -> int:
    tokens = Client.default().request(ops.TOKEN_LS)[0]["tokens"]
    if args.json:
        print_json(tokens)
        return 0
    rows = [[t["key"], t["name"] or "-",
             time.strftime("%Y-%m-%d %H:%M", time.localtime(t["created_at"] or 0))]
            for t in tokens]
    print(table(rows, ["KEY", "NAME", "CREATED"]) if rows else "no tokens")
    return 0


def cmd_token_rm(args: argparse.Namespace) -> int:
    Client.default().request(ops.TOKEN_RM, key=args.key)
    print(f"removed token {args.key}")
    return 0


COMMANDS = {"token create": cmd_token_create, "token ls": cmd_token_ls,
            "token list": cmd_token_ls,
            "token rm": cmd_token_rm}
