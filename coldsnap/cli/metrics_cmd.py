"""``coldsnap metrics``: the server's Prometheus metrics, as ``/metrics`` serves them
(docs/metrics.md), read over the server's socket (no gateway needed)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from coldsnap.client import Client
from coldsnap.wire import ops


def add_parser(sub: Any) -> None:
    sub.add_parser("metrics", help="print the server's Prometheus metrics (docs/metrics.md)")


def cmd_metrics(args: argparse.Namespace) -> int:
    sys.stdout.write(Client.default().request(ops.METRICS)[0]["text"])
    return 0


COMMANDS = {"metrics": cmd_metrics}
