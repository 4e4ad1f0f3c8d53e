"""The server's ends of a container's pipes: control messages split anywhere or late,
and the log pump's lines."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator

import pytest

from coldsnap.server.channel import ControlChannel, LogPump
from coldsnap.wire.framing import ChannelClosed, ProtocolError, write_message


def _frames(*messages: tuple[dict, bytes | None]) -> bytes:
    buf = io.BytesIO()
    for header, blob in messages:
        write_message(buf, header, blob)
    return buf.getvalue()


def test_control_channel_reassembles_messages_split_anywhere() -> None:
    data = _frames(({"type": "ready"}, None), ({"type": "result", "ok": True}, b"x" * 300_000))
    r, w = os.pipe()
    with os.fdopen(os.dup(1), "wb") as unused_out, os.fdopen(r, "rb") as ctrl_out:
        channel = ControlChannel(unused_out, ctrl_out)

        def trickle() -> None:
            for i in range(0, len(data), 7777):
                os.write(w, data[i:i + 7777])
                time.sleep(0.001)
            os.close(w)

        writer = threading.Thread(target=trickle)
        writer.start()
        assert channel.recv(5) == ({"type": "ready"}, None)
        header, blob = channel.recv(5)
        assert header == {"type": "result", "ok": True} and blob == b"x" * 300_000
        with pytest.raises(ChannelClosed):
            channel.recv(5)
        writer.join()


def test_control_channel_times_out() -> None:
    r, w = os.pipe()
    with os.fdopen(w, "wb") as writer, os.fdopen(r, "rb") as reader:
        channel = ControlChannel(writer, reader)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            channel.recv(0.2)
        assert 0.15 < time.monotonic() - started < 2


def test_log_pump_splits_lines_and_flushes_partial_ones_at_eof() -> None:
    r, w = os.pipe()
    lines: list[str] = []
    eof = threading.Event()
    with os.fdopen(r, "rb") as reader:
        pump = LogPump(reader, lines.append, eof.set, "test")
        os.write(w, b"one\ntw")
        os.write(w, b"o\r\nthree")
        os.close(w)
        assert eof.wait(5)
        pump.stop()
    assert lines == ["one", "two", "three"]


def test_log_pump_sync_delivers_what_is_already_written() -> None:
    r, w = os.pipe()
    lines: list[str] = []
    with os.fdopen(r, "rb") as reader:
        pump = LogPump(reader, lines.append, lambda: None, "test")
        os.write(w, b"printed before the result\n")
        pump.sync()
        assert lines == ["printed before the result"]
        pump.stop()
        os.close(w)


def _garbage_channel(data: bytes, max_blob: int | None = None) -> Iterator[ControlChannel]:
    r, w = os.pipe()
    os.write(w, data)
    with os.fdopen(w, "wb") as writer, os.fdopen(r, "rb") as reader:
        yield ControlChannel(writer, reader, max_blob)


@pytest.mark.parametrize("data, error", [
    (b"\0\0\0\x05hello", "not JSON"),
    (b"\0\0\0\x02[]", "not an object"),
    (b"\0\0\0\x02\xff\xfe", "not JSON"),
    (b"\xff\xff\xff\xff", "exceeds"),  # refused at once, not after reading 4 GiB
    (b'\0\0\0\x0e{"blob": true}' + (10**6).to_bytes(8, "big"), "exceeds the limit of 1000"),
])
def test_control_channel_refuses_malformed_messages(data: bytes, error: str) -> None:
    for channel in _garbage_channel(data, max_blob=1000):
        with pytest.raises(ProtocolError, match=error):
            channel.recv(5)
