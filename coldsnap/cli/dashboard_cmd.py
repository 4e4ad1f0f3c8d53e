"""``coldsnap dashboard``: a one-time login URL of the web dashboard (docs/dashboard.md)."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from typing import Any

from coldsnap.cli.output import print_json
from coldsnap.client import Client
from coldsnap.wire import ops


def add_parser(sub: Any) -> None:
    dash = sub.add_parser("dashboard", help="print a one-time login URL of the web dashboard "
                          "(valid once, for five minutes)")
    dash.add_argument("--open", action="store_true", help="also open it in a browser")
    dash.add_argument("--json", action="store_true", help="print JSON")


def cmd_dashboard(args: argparse.Namespace) -> int:
    reply = Client.default().request(ops.DASHBOARD_LOGIN)[0]
    url = reply["url"]
    if args.json:
        print_json({"url": url})
    else:
        print(f"dashboard: {url}\n(a one-time login URL, valid for five minutes; after it the "
              f"browser stays signed in. Or sign in at {reply['base']}/dashboard/login with "
              "the server token)")
    if args.open and not webbrowser.open(url):
        print("could not open a browser here: open the URL above yourself", file=sys.stderr)
    return 0


COMMANDS = {"dashboard": cmd_dashboard}
