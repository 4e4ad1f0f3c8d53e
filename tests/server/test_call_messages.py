"""What a caller and the app's log read when a call goes wrong on a real server: a
container that kills itself, a retried call's exception, a result that can't be
pickled. Each says what happened, to which call, and what to do, in one sentence."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from coldsnap.server.worker import exit_words
from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, write_app

APP = """
import os
import signal
import threading

import coldsnap

app = coldsnap.App("test-call-messages")


@app.function()
def suicide() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@app.function(retries=coldsnap.Retries(max_retries=1, initial_delay=0.1))
def flaky() -> None:
    raise ValueError("row 7 is bad: " + "x" * 400 + "\\nsecond line")


@app.function()
def lock() -> object:
    return threading.Lock()
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    require_criu()
    for handle in module_server("criu"):
        handle.cli("deploy", str(write_app(tmp_path_factory.mktemp("apps"), "messages", APP)))
        yield handle


def _caught(srv: ServerHandle, tag: str) -> tuple[str, str]:
    """(the exception's type and message, the client's stderr) of calling ``tag``."""
    out = srv.python(
        "import coldsnap\n"
        "try:\n"
        f"    coldsnap.Function.from_name('test-call-messages', {tag!r}).remote()\n"
        "except TypeError as exc:\n"
        "    print('TypeError |', exc)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, '|', exc)\n")
    return out.stdout.strip(), out.stderr


def test_a_container_that_kills_itself_reads_as_one_sentence(srv: ServerHandle) -> None:
    said, _ = _caught(srv, "suicide")
    pattern = (r"ExecutionError \| container (cs-\w+) exited \(exit status 137, killed by "
               r"signal 9 \(SIGKILL\)\) while running test-call-messages/suicide \(call "
               r"fc-\w+, attempt 1 of 1\); its log lines are above\. See `coldsnap logs "
               r"test-call-messages`")
    assert re.fullmatch(pattern, said), said


def test_a_retried_call_logs_its_exception_in_one_cut_line(srv: ServerHandle) -> None:
    said, stderr = _caught(srv, "flaky")
    assert said.startswith("ValueError | row 7 is bad: xxx") and "second line" in said
    [line] = [x for x in stderr.splitlines() if "trying again in" in x]
    cut = "ValueError: row 7 is bad: " + "x" * (200 - 27) + "…"  # 200 characters
    assert f"flaky raised {cut} (attempt 1 of 2); trying again in 0.1 s" in line, line


def test_a_result_that_cannot_be_pickled_says_it_was_the_result(srv: ServerHandle) -> None:
    said, _ = _caught(srv, "lock")  # still a TypeError, as pickle raised it
    assert said.startswith("TypeError | the result of lock could not be sent back to the "
                           "caller: cannot pickle '_thread.lock' object. Return a value "
                           "pickle can copy"), said


def test_exit_words_name_the_signal_of_a_killed_container() -> None:
    assert exit_words(137) == "exit status 137, killed by signal 9 (SIGKILL)"
    assert exit_words(-15) == "killed by signal 15 (SIGTERM)"  # the init itself: no status
    assert exit_words(3) == "exit status 3"
    assert exit_words(255) == "exit status 255"  # 127 is no signal
