"""Deploy an app to a real server and call it from a separate process."""

from __future__ import annotations

from tests.conftest import APPS, ServerHandle


def test_deploy_and_remote_call(server: ServerHandle) -> None:
    out = server.cli("deploy", str(APPS / "square.py")).stdout
    assert "deployed test-square version" in out
    result = server.python(
        "import coldsnap\n"
        "sq = coldsnap.Function.from_name('test-square', 'square')\n"
        "print(sq.remote(7), sq.remote(12))\n"
    )
    assert result.stdout.split() == ["49", "144"]
    # The caller sees its call's log lines, prefixed by the container id.
    assert "] square(7)" in result.stderr
    assert "[cs-" in result.stderr
    # Redeploying unchanged code is a no-op.
    again = server.cli("deploy", str(APPS / "square.py")).stdout
    assert "is up to date" in again
