"""A server frozen with SIGSTOP: a client fails within its timeout (no hang), saying
the server did not answer and which setting to raise; it answers again after SIGCONT."""

from __future__ import annotations

import os
import signal
import time

from tests.conftest import ServerHandle


def test_a_frozen_server_fails_a_request_within_the_client_timeout(
    server_factory: type[ServerHandle],
) -> None:
    server = server_factory(env={"COLDSNAP_CLIENT_TIMEOUT_S": "2"}).start()
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = server.cli("apps", "ls", check=False, timeout=60)
        waited = time.monotonic() - started
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert result.returncode == 1, result
    assert result.stderr.strip() == (
        f"error: the coldsnap server on {server.settings.socket_path} did not answer 'ping' "
        "within 2 s (COLDSNAP_CLIENT_TIMEOUT_S); is it overloaded, or stopped (SIGSTOP)? "
        "Its log: the output of the `coldsnap serve` that started it")  # started by hand
    assert waited < 20  # 2 s, and the interpreter's start on a busy machine
    assert "no apps deployed" in server.cli("apps", "ls").stdout
