"""Unit tests of the server's pure logic: framing on pipes, log lines, versions, tables."""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import time

import pytest

from coldsnap.server.calls import Call, CallTable
from coldsnap.server.channel import ControlChannel, LogPump
from coldsnap.server.describe import version_of
from coldsnap.server.errors import ApiError
from coldsnap.server.logs import AppLogs
from coldsnap.wire.description import AppDescription
from coldsnap.wire.errors import NOT_FOUND
from coldsnap.wire.framing import ChannelClosed, write_message


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


def test_app_logs_tail_and_follow() -> None:
    logs = AppLogs(limit=3)
    for i in range(5):
        logs.append(f"line {i}")
    lines, position = logs.tail(10)
    assert lines == ["line 2", "line 3", "line 4"] and position == 5
    assert logs.since(position, wait_s=0.05) == ([], 5)
    threading.Timer(0.05, logs.append, args=("line 5",)).start()
    assert logs.since(position, wait_s=5) == (["line 5"], 6)


def test_version_changes_with_source_image_and_options() -> None:
    description = AppDescription.from_dict({
        "app": "a", "image": {"hash": "img1", "spec": {"layers": []}},
        "functions": {"f": {"kind": "function", "options": {"timeout": None}}}})
    base = version_of(b"source", description)
    assert version_of(b"source", description) == base
    assert version_of(b"source2", description) != base
    assert version_of(b"source", dataclasses.replace(description, image_hash="img2")) != base
    assert version_of(b"source", description.without_snapshots()) == base  # none to turn off
    f = description.functions["f"]
    timeout = dataclasses.replace(f, options=dataclasses.replace(f.options, timeout=5))
    changed = dataclasses.replace(description, functions={"f": timeout})
    assert version_of(b"source", changed) != base


def test_call_finishes_once_and_the_table_finds_it() -> None:
    call = Call("app", "f", None, b"", timeout_s=1, retries=0)
    assert call.fail(ApiError("timeout", "first"))
    assert not call.fail(ApiError("timeout", "second"))
    assert call.outcome is not None and call.outcome.error is not None
    assert call.outcome.error.message == "first"
    table = CallTable(keep=2)
    for c in (call, Call("app", "f", None, b"", 1, 0), Call("app", "f", None, b"", 1, 0)):
        table.add(c)
    with pytest.raises(ApiError) as info:
        table.get(call.id)  # evicted: only two are kept
    assert info.value.kind == NOT_FOUND
