"""An app's log lines: a bounded ring, its tail, and following it."""

from __future__ import annotations

import threading

from coldsnap.server.logs import AppLogs


def test_app_logs_tail_and_follow() -> None:
    logs = AppLogs(limit=3)
    for i in range(5):
        logs.append(f"line {i}")
    lines, position = logs.tail(10)
    assert lines == ["line 2", "line 3", "line 4"] and position == 5
    assert logs.since(position, wait_s=0.05) == ([], 5)
    threading.Timer(0.05, logs.append, args=("line 5",)).start()
    assert logs.since(position, wait_s=5) == (["line 5"], 6)
