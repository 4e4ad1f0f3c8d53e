"""A server SIGKILLed under a client process: the process's next call gets a result
(a new background server) or, for a server started by hand, a clear error at once."""

from __future__ import annotations

import os
import signal
import time

from tests.conftest import APPS, ServerHandle

# Starts a background server (Client.default), deploys and calls, SIGKILLs that server,
# then calls again in the same process.
KILL_AND_CALL_AGAIN = f"""
import os, signal, time
import coldsnap
from coldsnap.client import Client

client = Client.default()
client.deploy(open({str(APPS / "square.py")!r}, "rb").read(), "square.py")
square = coldsnap.Function.from_name("test-square", "square")
print(square.remote(3))
first = client.ping()["pid"]
os.kill(first, signal.SIGKILL)
while open(f"/proc/{{first}}/stat").read().split(") ")[1][0] != "Z":  # our child: a zombie
    time.sleep(0.05)
print(square.remote(4))
print(first, client.ping()["pid"])
"""

CALL_KILL_CALL = """
import os, signal, time
import coldsnap
from coldsnap.client import Client

square = coldsnap.Function.from_name("test-square", "square")
print(square.remote(3))
os.kill(Client.default().ping()["pid"], signal.SIGKILL)
time.sleep(1)
started = time.monotonic()
try:
    square.remote(4)
except coldsnap.exception.ConnectionError as exc:
    print(f"{time.monotonic() - started:.1f}", exc)
"""


def test_a_client_whose_background_server_was_killed_starts_another(
    server_factory: type[ServerHandle],
) -> None:
    handle = server_factory(env={"COLDSNAP_CLIENT_TIMEOUT_S": "10"})  # not started: the client does
    result = handle.python(KILL_AND_CALL_AGAIN, timeout=180)
    lines = result.stdout.split()
    try:
        assert lines[:2] == ["9", "16"], result
        assert lines[2] != lines[3]  # another server answered
        assert "the background server on " in result.stderr
        assert "is gone; starting a new one" in result.stderr
    finally:
        if len(lines) == 4:
            os.kill(int(lines[3]), signal.SIGTERM)
            _wait_gone(int(lines[3]))


def test_a_client_whose_hand_started_server_was_killed_says_so_at_once(
    server_factory: type[ServerHandle],
) -> None:
    handle = server_factory(env={"COLDSNAP_CLIENT_TIMEOUT_S": "10"}).start()
    handle.cli("deploy", str(APPS / "square.py"))
    result = handle.python(CALL_KILL_CALL, timeout=120)
    first, waited, message = result.stdout.split(maxsplit=2)
    assert first == "9"
    assert float(waited) < 10.0
    assert message.strip() == (
        f"no coldsnap server answers on {handle.settings.socket_path} (Connection refused). "
        "Start one with `coldsnap serve`, or check COLDSNAP_STATE_DIR")
    assert "starting a new one" not in result.stderr  # not ours to start


def _wait_gone(pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
