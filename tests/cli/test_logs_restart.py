"""`coldsnap logs` after the server restarts: the app's lines from before come first."""

from __future__ import annotations

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
