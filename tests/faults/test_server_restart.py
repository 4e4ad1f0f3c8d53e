"""A server that stops, cleanly or killed, while spawned calls wait, run or have ended:
results outlive it, cut-off calls say they were interrupted, old results expire."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from coldsnap.server.worker import LOG_LINES_ABOVE
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import wait_for, write_app

SLOW_APP = """
import time

import coldsnap

app = coldsnap.App("test-slow")


@app.function(timeout=600)
def slow(seconds: float) -> str:
    print("slow: started", flush=True)
    time.sleep(seconds)
    return "slept"
"""

GET = ("import coldsnap, sys\n"
       "call = coldsnap.FunctionCall.from_id(sys.argv[1])\n"
       "try:\n"
       "    print(repr(call.get(timeout=30)))\n"
       "except Exception as exc:\n"
       "    print(type(exc).__name__, getattr(exc, 'kind', ''), '|', exc)\n")

REMOTE_SLOW = ("import coldsnap\n"
               "try:\n"
               "    print(repr(coldsnap.Function.from_name('test-slow', 'slow').remote(300)))\n"
               "except Exception as exc:\n"
               "    print(type(exc).__name__, getattr(exc, 'kind', ''), '|', exc)\n")


def _spawn(server: ServerHandle, app: str, tag: str, arg: object) -> str:
    return server.python(
        "import coldsnap\n"
        f"print(coldsnap.Function.from_name({app!r}, {tag!r}).spawn({arg!r}).object_id)\n"
    ).stdout.strip()


def _get(server: ServerHandle, call_id: str) -> str:
    return server._run([sys.executable, "-c", GET, call_id], True, 120).stdout.strip()


def _kill(server: ServerHandle) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)


def _spawn_slow_and_wait_running(server: ServerHandle, tmp_path: Path, seconds: float) -> str:
    server.cli("deploy", str(write_app(tmp_path, "slow", SLOW_APP)))
    call_id = _spawn(server, "test-slow", "slow", seconds)
    wait_for(lambda: "slow: started" in server.cli("logs", "test-slow").stdout, 60,
             "the spawned call to start")
    return call_id


def test_a_result_is_fetched_after_a_clean_restart(server: ServerHandle) -> None:
    server.cli("deploy", str(APPS / "square.py"))
    call_id = _spawn(server, "test-square", "square", 7)
    assert _get(server, call_id) == "49"
    server.restart()
    assert _get(server, call_id) == "49"
    assert _get(server, call_id) == "49"  # fetched, and still there until it expires


def test_a_result_is_fetched_after_the_server_was_killed(server: ServerHandle) -> None:
    server.cli("deploy", str(APPS / "square.py"))
    small = _spawn(server, "test-square", "square", 9)
    large = _spawn(server, "test-square", "big", 300_000)  # kept in a file of its own
    assert _get(server, small) == "81"
    assert _get(server, large) == repr(b"\x5a" * 300_000)  # both done before the kill
    _kill(server)
    server.start()
    assert _get(server, small) == "81"
    assert _get(server, large) == repr(b"\x5a" * 300_000)
    assert (server.state_dir / "call-results" / large).is_file()


def test_a_call_running_when_the_server_is_killed_is_interrupted(
    server: ServerHandle, tmp_path: Path
) -> None:
    # 30 s: long enough to be cut off; the killed server's container (engine none) is
    # an orphan that runs its call out.
    call_id = _spawn_slow_and_wait_running(server, tmp_path, 30)
    waiting = subprocess.Popen([sys.executable, "-c", GET, call_id], env=server.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # the caller is in its get
    _kill(server)
    out, _ = waiting.communicate(timeout=60)
    # The get was cut off, tried again (a get runs nothing twice), and found no server.
    assert out.startswith("ConnectionError unavailable | no coldsnap server answers on "), out
    assert "Start one with `coldsnap serve`" in out
    server.start()
    out = _get(server, call_id)
    assert out.startswith(f"ExecutionError interrupted | call {call_id} to test-slow/slow was "
                          "interrupted: the server stopped while it was queued or running "
                          "(noticed when the server started again at "), out
    assert out.endswith("UTC); it has no result: call test-slow/slow again")


def test_a_call_running_when_the_server_stops_cleanly_is_interrupted(
    server: ServerHandle, tmp_path: Path
) -> None:
    call_id = _spawn_slow_and_wait_running(server, tmp_path, 300)
    server.restart()  # the call outlasts the stop's grace period: its container is killed
    out = _get(server, call_id)
    assert out.startswith(f"ExecutionError interrupted | call {call_id} to test-slow/slow was "
                          "interrupted: the server was stopped at "), out
    assert "it has no result: call test-slow/slow again" in out


def test_calls_the_stop_cuts_short_say_the_server_stopped(
    server: ServerHandle, tmp_path: Path
) -> None:
    call_id = _spawn_slow_and_wait_running(server, tmp_path, 300)
    remote = subprocess.Popen([sys.executable, "-c", REMOTE_SLOW], env=server.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    getting = subprocess.Popen([sys.executable, "-c", GET, call_id], env=server.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: server.cli("logs", "test-slow").stdout.count("slow: started") == 2, 60,
             "the remote call to start too")
    assert server.stop() == 0, server.log()  # both outlast the grace period: killed
    for caller in (remote, getting):
        out, _ = caller.communicate(timeout=60)
        # The stop cut the calls short, not a failure of their containers.
        assert out.startswith("ConnectionError unavailable | "), out
        assert "the coldsnap server is shutting down" in out, out
        assert "call test-slow/slow again once the server runs" in out, out
        assert "exited (exit status" not in out and LOG_LINES_ABOVE not in out, out
    server.start()
    out = _get(server, call_id)
    assert out.startswith(f"ExecutionError interrupted | call {call_id} to test-slow/slow was "
                          "interrupted: the server was stopped at "), out
    assert "exited (exit status" not in out and LOG_LINES_ABOVE not in out, out


def test_an_expired_result_says_so(server_factory: type[ServerHandle]) -> None:
    server = server_factory(env={"COLDSNAP_CALL_RESULT_TTL_S": "2"}).start()
    server.cli("deploy", str(APPS / "square.py"))
    call_id = _spawn(server, "test-square", "square", 5)
    assert _get(server, call_id) == "25"
    time.sleep(2.5)
    server.restart()  # the start sweeps expired results
    out = _get(server, call_id)
    assert out.startswith(f"OutputExpiredError expired | the result of call {call_id} to "
                          "test-square/square expired: it ended at "), out
    assert out.endswith(" UTC and results are kept 2 s (COLDSNAP_CALL_RESULT_TTL_S); call "
                        "test-square/square again")
