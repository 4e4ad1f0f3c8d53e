"""How the CLI prints: aligned tables, sizes, durations, JSON."""

from __future__ import annotations

import datetime
import json
import sys
import time
from typing import Any


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def size(n_bytes: float | None) -> str:
    if not n_bytes:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return "-"


def millis(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def ago(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    delta = max(0.0, time.time() - timestamp)
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= span:
            return f"{delta / span:.0f}{unit} ago"
    return f"{delta:.0f}s ago"


def utc_timestamp(timestamp: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2025-01-31T14:02:03.517Z``."""
    when = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
