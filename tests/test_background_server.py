"""A background server that fails to start: the client's error shows the lines that
server logged, not those of the servers that failed before it in the same log."""

from __future__ import annotations

from tests.conftest import ServerHandle


def test_a_failed_start_shows_only_its_own_log_lines(
    server_factory: type[ServerHandle],
) -> None:
    server = server_factory()
    for level in ("loud", "quiet"):
        server.env["COLDSNAP_LOG_LEVEL"] = level
        done = server.cli("apps", "ls", check=False)
        assert done.returncode == 1, done
        assert "started a coldsnap server in the background but it exited with status 2" \
            in done.stderr, done.stderr
    assert "COLDSNAP_LOG_LEVEL='quiet' is not a log level" in done.stderr, done.stderr
    assert "'loud'" not in done.stderr, done.stderr  # the first server's line, still in the log
    assert done.stderr.count("is not a log level") == 1, done.stderr
    log = (server.state_dir / "server.log").read_text()
    assert "'loud'" in log and "'quiet'" in log, log
