"""After the server restarts: `coldsnap logs` shows the app's lines from before first,
and `coldsnap apps stats` says since when its counters count."""

from __future__ import annotations

import json
import time

from tests.conftest import APPS, ServerHandle

CALL = "import coldsnap\nprint(coldsnap.Function.from_name('test-square', 'square').remote({}))"


def test_logs_keep_the_lines_from_before_a_restart(server: ServerHandle) -> None:
    server.cli("deploy", str(APPS / "square.py"))
    assert server.python(CALL.format(5)).stdout.strip() == "25"
    before = server.cli("logs", "test-square").stdout.splitlines()
    assert any(line.endswith("] square(5)") for line in before), before
    server.restart()
    assert server.python(CALL.format(6)).stdout.strip() == "36"
    after = server.cli("logs", "test-square").stdout.splitlines()
    assert after[:len(before)] == before, after  # the old lines, then the new ones
    assert any(line.endswith("] square(6)") for line in after[len(before):]), after
    assert (server.state_dir / "logs" / "test-square.log").exists()


def test_stats_say_since_when_they_count(server: ServerHandle) -> None:
    server.cli("deploy", str(APPS / "square.py"))
    assert server.python(CALL.format(5)).stdout.strip() == "25"
    server.restart()
    restarted = time.time()
    assert server.python(CALL.format(6)).stdout.strip() == "36"
    stats = json.loads(server.cli("apps", "stats", "test-square", "--json").stdout)
    (fn,) = stats["functions"]
    assert fn["calls_ok"] == 1  # the call before the restart is not counted
    assert restarted - 30 <= fn["counting_since"] <= time.time()
    out = server.cli("apps", "stats", "test-square").stdout
    assert "OK to BOOTS count since " in out and "the server's start or the function's " \
        "last deploy or drain" in out, out
