"""Fault: the server runs out of file descriptors (EMFILE). Its accept loop and its
zombie reaper log it once, back off and keep going; once the clients are gone the
server serves again, as a user sees it: `coldsnap apps ls` and a real call."""

from __future__ import annotations

import resource
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import wait_for

LOW_LIMIT = 256


@contextmanager
def _soft_nofile(limit: int) -> Iterator[None]:
    """Children started meanwhile inherit a soft open-file limit of ``limit``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_server_serves_again_after_running_out_of_file_descriptors(
    server_factory: type[ServerHandle],
) -> None:
    with _soft_nofile(LOW_LIMIT):
        server = server_factory().start()
    assert server.proc is not None
    pid = server.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    assert soft == min(hard, 65536), "the server raises its soft open-file limit at start"
    server.cli("deploy", str(APPS / "square.py"))

    resource.prlimit(pid, resource.RLIMIT_NOFILE, (LOW_LIMIT, hard))
    clients = []
    try:
        for _ in range(300):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(server.settings.socket_path))
            clients.append(sock)
        # The reaper sweeps /proc once a second: it runs out of descriptors too.
        wait_for(lambda: "the zombie reaper failed: EMFILE" in server.log(), 10,
                 "the reaper to meet EMFILE")
    finally:
        for sock in clients:
            sock.close()

    listing = server.cli("apps", "ls", timeout=30)
    assert "test-square" in listing.stdout
    called = server.python("import coldsnap\n"
                           "print(coldsnap.Function.from_name('test-square', 'square').remote(9))",
                           timeout=60)
    assert called.stdout.strip() == "81"
    wait_for(lambda: "the zombie reaper works again" in server.log(), 10, "the reaper to recover")
    log = server.log()
    assert log.count("accepting connections failed: EMFILE") == 1, log[-3000:]
    assert log.count("the zombie reaper failed: EMFILE") == 1, log[-3000:]
    assert "accepting connections works again" in log
    assert "Traceback" not in log, log[-3000:]

