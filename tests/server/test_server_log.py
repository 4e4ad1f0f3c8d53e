"""The server's own log (format, level, COLDSNAP_LOG_LEVEL) and the arrival times kept
with each app log line for `coldsnap logs --timestamps`."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from coldsnap.cli.inspect_cmds import _log_lines
from coldsnap.cli.output import utc_timestamp
from coldsnap.server import server_log
from coldsnap.server.api import Api, Request
from coldsnap.server.logs import AppLogs, LogBook
from coldsnap.settings import Settings
from coldsnap.wire.errors import InvalidError

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (\w+) ([\w.]+): (.*)")


@pytest.fixture
def server_log_stream() -> Iterator[io.StringIO]:
    """``server_log.configure`` at DEBUG into a buffer; the global logging state after."""
    root, coldsnap = logging.getLogger(), logging.getLogger("coldsnap")
    saved = (root.level, coldsnap.level, threading.excepthook)
    stream = io.StringIO()
    handler = server_log.configure("DEBUG", stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(saved[0])
    coldsnap.setLevel(saved[1])
    threading.excepthook = saved[2]


def test_server_log_lines_carry_time_level_and_logger(server_log_stream: io.StringIO) -> None:
    logging.getLogger("coldsnap.server.daemon").info("coldsnap server 1 listening on x")
    logging.getLogger("coldsnap.server.pool").debug("a detail")
    logging.getLogger("some.library").info("chatter")  # libraries: warnings and up only
    logging.getLogger("some.library").warning("a library's warning")
    lines = [LINE.fullmatch(line) for line in server_log_stream.getvalue().splitlines()]
    assert all(lines), server_log_stream.getvalue()
    assert [m.groups() for m in lines if m] == [
        ("INFO", "coldsnap.server.daemon", "coldsnap server 1 listening on x"),
        ("DEBUG", "coldsnap.server.pool", "a detail"),
        ("WARNING", "some.library", "a library's warning"),
    ]


def test_a_thread_that_dies_is_logged_with_its_traceback(
    server_log_stream: io.StringIO,
) -> None:
    def broken() -> None:
        raise RuntimeError("scheduler bug")

    thread = threading.Thread(target=broken, name="container-f")
    thread.start()
    thread.join()
    text = server_log_stream.getvalue()
    assert "ERROR coldsnap.server.server_log: thread container-f died" in text
    assert "RuntimeError: scheduler bug" in text


def test_the_servers_notes_about_containers_are_echoed_to_its_log(
    server_log_stream: io.StringIO,
) -> None:
    book = LogBook()
    book.write("app", "[cs-1] hello from user code")
    book.write("app", "[cs-1] coldsnap: a user's print that looks like a note")
    book.note("app", "[cs-1] coldsnap: plain boot ready in 120 ms", logging.INFO,
              logging.getLogger("coldsnap.server.pool"))
    book.note("app", "[f] coldsnap: boot failed: enter raised", logging.WARNING,
              logging.getLogger("coldsnap.server.pool"))
    assert server_log_stream.getvalue().count("\n") == 2, server_log_stream.getvalue()
    assert "INFO coldsnap.server.pool: app [cs-1] coldsnap: plain boot ready" in (
        server_log_stream.getvalue())
    assert "WARNING coldsnap.server.pool: app [f] coldsnap: boot failed: enter raised" in (
        server_log_stream.getvalue())
    assert book.app("app").tail(10)[0] == [  # the app's log: every line, as written
        "[cs-1] hello from user code", "[cs-1] coldsnap: a user's print that looks like a note",
        "[cs-1] coldsnap: plain boot ready in 120 ms", "[f] coldsnap: boot failed: enter raised"]


def test_log_level_setting_names_the_variable_and_the_levels() -> None:
    assert Settings.from_env({}).log_level_name() == "INFO"
    assert Settings.from_env({"COLDSNAP_LOG_LEVEL": "debug"}).log_level_name() == "DEBUG"
    bad = Settings.from_env({"COLDSNAP_LOG_LEVEL": "loud"})
    with pytest.raises(ValueError, match=r"COLDSNAP_LOG_LEVEL='loud' is not a log level; "
                       r"use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        bad.log_level_name()


def test_app_logs_keep_each_lines_arrival_time_and_text() -> None:
    logs = AppLogs()
    before = time.time()
    logs.append("[cs-1] one")
    logs.append("[cs-1] two")
    lines, position = logs.tail_timed(10)
    assert [line.text for line in lines] == ["[cs-1] one", "[cs-1] two"]
    assert before <= lines[0].time <= lines[1].time <= time.time()
    assert logs.tail(10) == (["[cs-1] one", "[cs-1] two"], position)
    logs.append("[cs-2] three")
    assert [line.text for line in logs.since_timed(position, 0)[0]] == ["[cs-2] three"]


def test_the_logs_op_sends_times_only_when_asked() -> None:
    book = LogBook(echo=False)
    book.write("app", "[cs-1] hello")
    platform = SimpleNamespace(deploys=SimpleNamespace(require=lambda app: None), logs=book)
    api = Api(platform)  # type: ignore[arg-type]
    plain = api.logs(Request({"op": "logs", "app": "app"}, None, None))
    assert plain == ({"ok": True, "lines": ["[cs-1] hello"]}, None)
    timed = api.logs(Request({"op": "logs", "app": "app", "timestamps": True}, None, None))
    assert timed is not None and timed[0]["lines"] == ["[cs-1] hello"]
    assert timed[0]["times"] == [line.time for line in book.app("app").tail_timed(1)[0]]


def test_cli_prefixes_lines_with_utc_iso_timestamps() -> None:
    assert utc_timestamp(0) == "1970-01-01T00:00:00.000Z"
    reply = {"lines": ["[cs-1] hello", "[cs-1] bye"], "times": [1.5, 86400.25]}
    assert _log_lines(reply, timestamps=False) == reply["lines"]
    assert _log_lines(reply, timestamps=True) == [
        "1970-01-01T00:00:01.500Z [cs-1] hello", "1970-01-02T00:00:00.250Z [cs-1] bye"]
    with pytest.raises(InvalidError, match="sent no timestamps"):
        _log_lines({"lines": ["[cs-1] hello"]}, timestamps=True)
