"""The connection user code in a container gets: requests over the runtime's pipe."""

from __future__ import annotations

import time as clock
from typing import Any

import pytest

from coldsnap.container_client import ContainerClient
from coldsnap.wire.errors import InvalidError


def test_calls_from_a_container_wait_no_longer_than_the_call_making_them() -> None:
    sent: list[dict[str, Any]] = []

    class RuntimeChannel:  # the runtime's side, as serve.run_call leaves it during a call
        serving, max_payload, deadline = True, 1000, clock.monotonic() + 5.0

        def request(self, header: dict[str, Any], blob: bytes | None
                    ) -> tuple[dict[str, Any], None]:
            sent.append(header)
            return {"ok": True, "call_id": "fc-1"}, None

    conn = ContainerClient(RuntimeChannel())  # type: ignore[arg-type]
    conn.request("call", b"args", app="a", tag="f", method=None, timeout=None)
    conn.request("get", call_id="fc-1", timeout=60.0)
    conn.request("spawn", b"args", app="a", tag="f", method=None)
    assert 4.0 < sent[0]["timeout"] <= 5.0 and 4.0 < sent[1]["timeout"] <= 5.0
    assert "timeout" not in sent[2]  # a spawn does not wait
    with pytest.raises(InvalidError, match="over the server's limit of 1000 bytes"):
        conn.request("call", b"x" * 2000, app="a", tag="f", method=None)


def test_a_malformed_tcp_setting_is_an_invalid_error_naming_the_fix() -> None:
    from coldsnap.client import Client
    from coldsnap.settings import Settings

    client = Client(Settings(tcp="127.0.0.1:99999"))
    with pytest.raises(InvalidError, match=r"COLDSNAP_TCP='127.0.0.1:99999' is not HOST:PORT "
                       r"\(e.g. 127.0.0.1:7070\). Fix COLDSNAP_TCP, or unset it"):
        client.ping()
