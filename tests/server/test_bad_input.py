"""Bad input gets a clear error and the server stays up: requests, payloads, tokens, app
files that fail to import, app names the SDK refuses."""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.client import Client
from coldsnap.server.describe import check_app_name
from coldsnap.wire.errors import ServerError
from coldsnap.wire.framing import read_message, write_message
from coldsnap.wire.serialization import dumps_args
from tests.cli.test_run import BROKEN_APPS
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import app_with_env, module_server, write_app


def _raw(server: ServerHandle, payload: bytes) -> dict:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(server.settings.socket_path))
        sock.sendall(payload)
        return read_message(sock.makefile("rb"))[0]


def _alive(server: ServerHandle) -> None:
    conn = Client(server.settings)
    try:
        assert conn.ping()["ok"] is True
    finally:
        conn.close()


def test_token_is_private_and_required(server: ServerHandle) -> None:
    mode = stat.S_IMODE(os.stat(server.settings.token_path).st_mode)
    assert mode == 0o600
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(server.settings.socket_path))
        stream = sock.makefile("rwb")
        write_message(stream, {"op": "apps_ls"})
        reply = read_message(stream)[0]
        assert reply["error"]["kind"] == "unauthorized"
        assert "token" in reply["error"]["message"]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(server.settings.socket_path))
        stream = sock.makefile("rwb")
        write_message(stream, {"op": "apps_ls", "token": "wrong"})
        assert read_message(stream)[0]["error"]["kind"] == "unauthorized"
    _alive(server)


def test_malformed_requests(server: ServerHandle) -> None:
    reply = _raw(server, struct.pack(">I", 5) + b"{nope")
    assert reply["error"]["kind"] == "bad_request"
    assert "not JSON" in reply["error"]["message"]
    reply = _raw(server, struct.pack(">I", 2) + b"[]")
    assert reply["error"]["kind"] == "bad_request"
    conn = Client(server.settings)
    try:
        for op, fields, expected in [
            ("launch", {}, "unknown op 'launch'; known ops:"),
            ("call", {"app": 3, "tag": "f"}, "field 'app' of op 'call' has the wrong type int"),
            ("call", {"app": "a", "tag": "f"}, "op 'call' needs arguments as its blob"),
        ]:
            try:
                conn.request(op, **fields)
            except ServerError as exc:
                assert exc.kind == "bad_request"
                assert expected in str(exc)
            else:
                raise AssertionError(f"{op} {fields} was accepted")
    finally:
        conn.close()
    _alive(server)


def test_oversized_payload_is_refused(server_factory: type[ServerHandle]) -> None:
    server = server_factory(env={"COLDSNAP_MAX_PAYLOAD_BYTES": "100000"}).start()
    server.cli("deploy", str(APPS / "square.py"))
    conn = Client(server.settings)
    try:
        conn.call("test-square", "square", None, dumps_args((10,), {}))
        try:
            conn.call("test-square", "big", None, dumps_args((b"x" * 5_000_000,), {}))
        except ServerError as exc:
            assert exc.kind == "too_large"
            assert "exceeds the limit of 100000 bytes" in str(exc)
            assert "COLDSNAP_MAX_PAYLOAD_BYTES" in str(exc)
        else:
            raise AssertionError("a 5 MB payload was accepted with a 100 kB limit")
        assert conn.call("test-square", "square", None, dumps_args((4,), {}))
    finally:
        conn.close()
    _alive(server)


def test_deploy_of_a_file_that_fails_to_import(server: ServerHandle, tmp_path: Path) -> None:
    app = app_with_env(tmp_path, APPS / "failing_hooks.py", {"FAILING_HOOKS_STAGE": "import"})
    result = server.cli("deploy", str(app), check=False)
    assert result.returncode == 1
    assert "importing failing_hooks.py failed" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: failing_hooks: import-time failure on purpose" in result.stderr
    assert "test-failing-hooks" not in server.cli("apps", "ls").stdout
    _alive(server)


def test_deploy_of_a_missing_file(server: ServerHandle) -> None:
    result = server.cli("deploy", "/nonexistent/app.py", check=False)
    assert result.returncode == 1
    assert "can't read app file /nonexistent/app.py" in result.stderr


def test_second_server_on_the_same_state_dir(server: ServerHandle) -> None:
    second = ServerHandle.__new__(ServerHandle)
    second.__dict__.update(server.__dict__)
    result = second.cli("serve", check=False, timeout=30)
    assert result.returncode == 3
    assert "another coldsnap server" in result.stderr
    assert "COLDSNAP_STATE_DIR" in result.stderr
    _alive(server)


def test_tcp_listener_with_token(server_factory: type[ServerHandle]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = server_factory(env={"COLDSNAP_TCP": f"127.0.0.1:{port}"}).start()
    server.cli("deploy", str(APPS / "square.py"))
    out = server.python(
        "import coldsnap\n"
        "print(coldsnap.Function.from_name('test-square', 'square').remote(5))\n"
    )
    assert out.stdout.strip() == "25"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        stream = sock.makefile("rwb")
        write_message(stream, {"op": "apps_ls"})
        assert read_message(stream)[0]["error"]["kind"] == "unauthorized"


LONG_NAME_APP = """
import coldsnap

app = coldsnap.App({name!r})


@app.function()
def hello() -> str:
    return "hello"
"""


def test_deploy_refuses_a_name_the_sdk_refuses(server: ServerHandle, tmp_path: Path) -> None:
    assert check_app_name("a" * 64) == "a" * 64
    for name in ("x;rm", ".."):
        result = server.cli("deploy", "--name", name, str(APPS / "square.py"), check=False)
        assert result.returncode == 1
        assert f"app name {name!r} is not valid" in result.stderr
    assert json.loads(server.cli("apps", "ls", "--json").stdout) == []
    # `run` names its ephemeral copy after the app: still a valid name for a 64-char one.
    app = write_app(tmp_path, "long_name", LONG_NAME_APP.format(name="n" * 64))
    assert server.cli("run", str(app)).stdout.strip() == "hello"


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    yield from module_server("none")


@pytest.mark.parametrize("case", sorted(BROKEN_APPS))
def test_deploy_of_a_broken_app_file_shows_only_the_users_frames(
    srv: ServerHandle, tmp_path: Path, case: str
) -> None:
    source, expected = BROKEN_APPS[case]
    result = srv.cli("deploy", str(write_app(tmp_path, case, source)), check=False)
    assert result.returncode == 1, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    for internal in ("coldsnap/_runtime", "user_code.py", "<frozen", "describe.py"):
        assert internal not in result.stderr, result.stderr
