"""The gateway's settings: its address (a busy port is a clear error, off is off) and
its body limit (413)."""

from __future__ import annotations

import socket
import subprocess
import sys
from contextlib import closing

import pytest

from tests.conftest import APPS, ServerHandle
from tests.web.http import Gateway


def test_a_busy_port_is_a_startup_error_naming_the_setting(
    server_factory: type[ServerHandle],
) -> None:
    with closing(socket.create_server(("127.0.0.1", 0))) as taken:
        port = taken.getsockname()[1]
        handle = server_factory(env={"COLDSNAP_HTTP": f"127.0.0.1:{port}"})
        with pytest.raises(RuntimeError) as failure:
            handle.start()
    message = str(failure.value)
    assert f"can't listen on 127.0.0.1:{port} (COLDSNAP_HTTP)" in message
    assert "Address already in use" in message


def test_a_malformed_address_is_refused_before_anything_starts(tmp_path: object) -> None:
    result = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "serve"],
                            env={"COLDSNAP_HTTP": "nowhere", "COLDSNAP_STATE_DIR": "/nonexistent",
                                 "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "COLDSNAP_HTTP='nowhere' is not HOST:PORT or off" in result.stderr


def test_off_means_no_gateway(server_factory: type[ServerHandle]) -> None:
    handle = server_factory(env={"COLDSNAP_HTTP": "off"}).start()
    assert handle.http == "None"


def test_a_body_over_the_limit_is_413(server_factory: type[ServerHandle]) -> None:
    handle = server_factory(env={"COLDSNAP_HTTP_MAX_BODY_BYTES": "1000"}).start()
    handle.cli("deploy", str(APPS / "web_endpoints.py"))
    gateway = Gateway(handle, "webapp")
    status, body = gateway.request("echo", "POST", body={"text": "x" * 2000})
    assert status == 413
    assert b"COLDSNAP_HTTP_MAX_BODY_BYTES" in body
    with closing(gateway.connection()) as conn:  # no Content-Length: counted as it streams
        conn.request("POST", "/count", body=iter([b"y" * 600, b"y" * 600]),
                     encode_chunked=True, headers={"Host": gateway.host_of("streamer"),
                                                   "Transfer-Encoding": "chunked"})
        assert conn.getresponse().status == 413
    assert gateway.request("echo", "POST", body={"text": "small"})[0] == 200
