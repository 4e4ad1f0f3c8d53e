"""`coldsnap volume put` of a local path that is not there: an error, no traceback."""

from __future__ import annotations

from tests.conftest import ServerHandle


def test_volume_put_of_a_missing_file_says_so(server: ServerHandle) -> None:
    result = server.cli("volume", "put", "v1", "/nonexistent/file", check=False)
    assert result.returncode == 2
    assert "error: /nonexistent/file does not exist" in result.stderr
    assert "Traceback" not in result.stderr
