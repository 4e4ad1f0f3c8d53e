"""Faults: requests that should cost the server nothing. A large blob without the right
token is refused unread (the server's peak memory does not grow by it); a number that is
NaN, infinite, negative or absurd is refused, naming the field and the range allowed."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import cloudpickle
import pytest

from coldsnap.client import Client
from coldsnap.wire.errors import ServerError
from coldsnap.wire.framing import read_message
from coldsnap.wire.serialization import dumps_args
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, stats

BLOB_MB = 400


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ServerHandle]:
    yield from module_server()


def _peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


@pytest.mark.parametrize("token", [None, "wrong"], ids=["no-token", "wrong-token"])
def test_a_large_blob_without_the_token_is_refused_unread(
    server_factory: type[ServerHandle], token: str | None,
) -> None:
    server = server_factory().start()
    assert server.proc is not None
    before = _peak_rss_mb(server.proc.pid)
    header = b'{"op": "deploy", "filename": "app.py", "blob": true'
    header += (b', "token": "%s"}' % token.encode()) if token else b"}"
    chunk = b"\0" * (1 << 20)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(server.settings.socket_path))
        sock.sendall(struct.pack(">I", len(header)) + header + struct.pack(">Q", BLOB_MB << 20))
        try:
            for _ in range(BLOB_MB):
                sock.sendall(chunk)
        except OSError:
            pass  # the server hung up on the rest, as it should
        reply = read_message(sock.makefile("rb"))[0]
    assert reply["error"]["kind"] == "unauthorized"
    assert "token" in reply["error"]["message"]
    grown = _peak_rss_mb(server.proc.pid) - before
    assert grown < BLOB_MB / 4, f"the server's peak memory grew by {grown:.0f} MiB"


def _refusal(server: ServerHandle, op: str, blob: bytes | None = None, **fields: object
             ) -> str:
    conn = Client(server.settings)
    try:
        with pytest.raises(ServerError) as caught:
            conn.request(op, blob, **fields)
    finally:
        conn.close()
    assert caught.value.kind == "bad_request", caught.value
    return str(caught.value)


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1, 0, 1e300, True, "5"])
def test_a_call_with_a_bad_timeout_is_refused_before_it_runs(
    shared_server: ServerHandle, timeout: object,
) -> None:
    shared_server.cli("deploy", str(APPS / "square.py"))
    message = _refusal(shared_server, "call", dumps_args((4,), {}), app="test-square",
                       tag="square", timeout=timeout)
    assert "field 'timeout' of op 'call' must be a number > 0 and <= 604800" in message
    assert stats(shared_server, "test-square")["boots"] == [], "refused, yet a container booted"


@pytest.mark.parametrize(("op", "fields", "expected"), [
    ("get", {"call_id": "fc-x", "timeout": -0.5}, "'timeout' of op 'get' must be a number >= 0"),
    ("get", {"call_id": "fc-x", "timeout": float("nan")}, "'timeout' of op 'get'"),
    ("logs", {"app": "test-square", "tail": -1}, "'tail' of op 'logs' must be an integer >= 0"),
    ("logs", {"app": "test-square", "tail": 2.5}, "'tail' of op 'logs' must be an integer"),
    ("snapshots_gc", {"keep": -3}, "'keep' of op 'snapshots_gc' must be an integer >= 0"),
    ("app_drain", {"app": "test-square", "wait": float("-inf")},
     "'wait' of op 'app_drain' must be a number >= 0 and <= 604800"),
], ids=["get-negative", "get-nan", "tail-negative", "tail-fraction", "keep-negative",
        "wait-minus-inf"])
def test_a_bad_number_is_refused_naming_the_field_and_range(
    shared_server: ServerHandle, op: str, fields: dict[str, object], expected: str,
) -> None:
    shared_server.cli("deploy", str(APPS / "square.py"))
    assert expected in _refusal(shared_server, op, **fields)


def test_get_with_timeout_zero_polls(server: ServerHandle) -> None:
    server.cli("deploy", str(APPS / "square.py"))
    conn = Client(server.settings)
    try:
        call_id = conn.request("spawn", dumps_args((3,), {}), app="test-square",
                               tag="square")[0]["call_id"]
        try:
            conn.request("get", call_id=call_id, timeout=0)  # done already, or not yet
        except ServerError as exc:
            assert exc.kind == "timeout", exc
        assert cloudpickle.loads(conn.get(call_id, timeout=60)) == 9
    finally:
        conn.close()
