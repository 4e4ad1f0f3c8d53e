"""The gateway's lean path on the wire: what HTTP/1.1 clients may send on one
connection (pipelined requests, HEAD, requests its aiohttp handlers answer between
requests for containers, HTTP/1.0, garbage), with a real server and real HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import APPS
from tests.end_to_end import module_server, require_criu
from tests.web.http import Gateway


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    require_criu()
    for handle in module_server("criu"):
        handle.cli("deploy", str(APPS / "web_endpoints.py"))
        yield Gateway(handle, "webapp")


class Wire:
    """A raw connection to the gateway that reads responses one by one."""

    def __init__(self, gateway: Gateway) -> None:
        self.sock = socket.create_connection((gateway.host, gateway.port), timeout=120)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in
                   (line.partition(":") for line in lines[1:])}
        status = int(lines[0].split()[1])
        if head_only:
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            return status, headers, self._chunked()
        if "content-length" in headers:
            return status, headers, self._exactly(int(headers["content-length"]))
        while data := self.sock.recv(65536):  # delimited by the connection's end
            self.buffer += data
        body, self.buffer = self.buffer, b""
        return status, headers, body

    def _chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buffer:
                self._read()
            size_line, self.buffer = self.buffer.split(b"\r\n", 1)
            size = int(size_line, 16)
            body += self._exactly(size)
            self._exactly(2)
            if size == 0:
                return body

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._read()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed with {self.buffer!r} unread")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


def _get(gateway: Gateway, path: str, label: str = "classic", method: str = "GET",
         version: str = "1.1") -> bytes:
    return (f"{method} {path} HTTP/{version}\r\nHost: {gateway.host_of(label)}\r\n\r\n"
            .encode())


def test_pipelined_requests_are_answered_in_order(gateway: Gateway) -> None:
    wire = Wire(gateway)
    try:
        wire.send(b"".join(_get(gateway, f"/{n}") for n in ("first", "second", "third")))
        bodies = [wire.response()[2] for _ in range(3)]
        assert bodies == [b"wsgi GET /first", b"wsgi GET /second", b"wsgi GET /third"]
    finally:
        wire.close()


def test_one_connection_mixes_endpoints_and_the_gateways_own_answers(
    gateway: Gateway,
) -> None:
    wire = Wire(gateway)
    try:
        wire.send(b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = wire.response()
        assert status == 404 and b"names no web endpoint" in body
        wire.send(_get(gateway, "/after-404"))
        assert wire.response()[2] == b"wsgi GET /after-404"
        wire.send(_get(gateway, "/", label="secret-hello"))  # no token: the handlers' 401
        status, _, body = wire.response()
        assert status == 401 and b"requires proxy auth" in body
        wire.send(_get(gateway, "/again"))
        assert wire.response()[2] == b"wsgi GET /again"
    finally:
        wire.close()


def test_head_has_no_body_and_the_connection_goes_on(gateway: Gateway) -> None:
    wire = Wire(gateway)
    try:
        wire.send(_get(gateway, "/h", method="HEAD"))
        status, headers, _ = wire.response(head_only=True)
        assert status == 200 and headers["content-type"] == "text/plain"
        wire.send(_get(gateway, "/after-head"))
        assert wire.response()[2] == b"wsgi GET /after-head"
    finally:
        wire.close()


def test_an_http_1_0_client_gets_its_answer_and_the_connection_closes(
    gateway: Gateway,
) -> None:
    wire = Wire(gateway)
    try:
        wire.send(_get(gateway, "/old", version="1.0"))
        status, headers, body = wire.response()
        assert (status, body) == (200, b"wsgi GET /old")
        assert headers.get("connection") == "close"
    finally:
        wire.close()


def test_a_malformed_request_is_400_and_closed(gateway: Gateway) -> None:
    wire = Wire(gateway)
    try:
        wire.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
        status, _, body = wire.response()
        assert status == 400 and b"malformed" in body
        assert wire.closed()
    finally:
        wire.close()


def test_a_chunked_body_reaches_the_container_whole(gateway: Gateway) -> None:
    wire = Wire(gateway)
    try:
        chunks = [b"a" * 10, b"b" * 70000, b"c"]
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        wire.send(f"POST /count HTTP/1.1\r\nHost: {gateway.host_of('streamer')}\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode() + body)
        status, _, answer = wire.response()
        assert status == 200 and answer == b'{"bytes":70011}'
    finally:
        wire.close()


def test_a_declared_body_over_the_limit_is_413_without_a_100_continue(
    gateway: Gateway,
) -> None:
    wire = Wire(gateway)
    try:
        wire.send(f"POST /count HTTP/1.1\r\nHost: {gateway.host_of('streamer')}\r\n"
                  "Content-Length: 300000000\r\nExpect: 100-continue\r\n\r\n".encode())
        status, _, body = wire.response()
        assert status == 413 and b"COLDSNAP_HTTP_MAX_BODY_BYTES" in body  # not 100 first
    finally:
        wire.close()


def test_expect_100_continue_under_the_limit_is_answered(gateway: Gateway) -> None:
    wire = Wire(gateway)
    try:
        wire.send(f"POST /count HTTP/1.1\r\nHost: {gateway.host_of('streamer')}\r\n"
                  "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n".encode())
        status, _, _ = wire.response(head_only=True)  # an interim response: no body
        assert status == 100
        wire.send(b"hello")
        assert wire.response()[:1] == (200,) and wire.buffer == b""
    finally:
        wire.close()
