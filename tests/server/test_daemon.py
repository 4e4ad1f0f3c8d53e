"""What an operator reads: server.log's timestamped records, COLDSNAP_LOG_LEVEL checked
at startup."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from coldsnap.wire.exits import EXIT_BAD_SETTING
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import require_criu, write_app


def test_server_log_records_are_timestamped_with_level_and_logger(
    server: ServerHandle,
) -> None:
    server.cli("deploy", str(APPS / "square.py"))
    assert server.stop() == 0
    lines = server.log().splitlines()
    record = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "
                        r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) coldsnap\.[\w.]+: .+")
    assert lines and all(record.fullmatch(line) for line in lines), "\n".join(lines)
    assert re.search(r" INFO coldsnap\.server\.daemon: coldsnap server \d+ listening on ",
                     lines[0])
    assert any("INFO coldsnap.server.deploys: test-square coldsnap: deployed" in line
               for line in lines)
    assert lines[-1].endswith("INFO coldsnap.server.daemon: coldsnap server stopped")


def test_a_bad_log_level_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    env = {**os.environ, "COLDSNAP_STATE_DIR": str(tmp_path / "state"),
           "COLDSNAP_LOG_LEVEL": "loud"}
    result = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "serve"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: COLDSNAP_LOG_LEVEL='loud' is not a log level; "
        "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    assert not (tmp_path / "state").exists()


def test_a_malformed_tcp_setting_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    env = {**os.environ, "COLDSNAP_STATE_DIR": str(tmp_path / "state"), "COLDSNAP_TCP": "bad"}
    result = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "serve"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_BAD_SETTING
    assert result.stderr.strip() == (
        "error: COLDSNAP_TCP='bad' is not HOST:PORT (e.g. 127.0.0.1:7070)")
    assert not (tmp_path / "state").exists()  # no log, no engine, no socket


def test_a_warm_memory_size_that_is_no_number_stops_the_server_before_it_starts(
        tmp_path: Path) -> None:
    env = {**os.environ, "COLDSNAP_STATE_DIR": str(tmp_path / "state"),
           "COLDSNAP_WARM_MEMORY_MB": "1GB"}
    result = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "serve"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_BAD_SETTING
    assert result.stderr.strip() == (
        "error: COLDSNAP_WARM_MEMORY_MB='1GB': use a whole number of MB, 0 or more (0: off), "
        "or auto (on where this VM hands free memory back)")
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("engine", ["none", "criu"])
def test_a_server_that_fails_to_listen_leaves_nothing_behind(engine: str) -> None:
    """A port in use fails the start after the engine and the unix socket exist: both
    are given back (the criu engine's tmpfs on the run dir too)."""
    if engine == "criu":
        require_criu()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        handle = ServerHandle(engine, {"COLDSNAP_TCP": f"127.0.0.1:{port}"})
        try:
            result = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "serve"],
                                    env=handle.env, capture_output=True, text=True,
                                    timeout=120)
            assert result.returncode == 1, result.stderr
            assert (f"can't listen on tcp 127.0.0.1:{port} (COLDSNAP_TCP): Address already "
                    "in use; stop what uses it or pick another port") in result.stderr
            assert "coldsnap server stopped" in result.stderr  # the `finally` ran
            assert not handle.settings.socket_path.exists()
            assert not os.path.ismount(handle.run_dir)
        finally:
            handle.cleanup()


NOTES_APP = """
import coldsnap

app = coldsnap.App("test-ops-notes")


@app.cls()
class Broken:
    @coldsnap.enter()
    def setup(self):
        print("coldsnap: a user's line that looks like the server's", flush=True)
        raise RuntimeError("setup failed on purpose")

    @coldsnap.method()
    def run(self) -> str:
        return "unreachable"
"""

CALL_NOTES_APP = """
import coldsnap
try:
    coldsnap.Cls.from_name("test-ops-notes", "Broken")().run.remote()
except RuntimeError as exc:
    print(exc)
"""


def test_at_warning_the_server_log_keeps_boot_failures_and_no_user_lines(
    server_factory: type[ServerHandle], tmp_path: Path,
) -> None:
    server = server_factory(env={"COLDSNAP_LOG_LEVEL": "WARNING"}).start()
    server.cli("deploy", str(write_app(tmp_path, "notes_app", NOTES_APP)))
    assert server.python(CALL_NOTES_APP).stdout.strip() == "setup failed on purpose"
    app_log = server.cli("logs", "test-ops-notes").stdout.splitlines()
    assert server.stop() == 0
    lines = server.log().splitlines()
    failed = [line for line in lines if "coldsnap: boot failed: " in line]
    assert failed and all(" WARNING coldsnap.server.pool: test-ops-notes [Broken] coldsnap: "
                          "boot failed: container cs-" in line for line in failed), lines
    assert not [line for line in lines if " INFO " in line], lines
    assert "looks like the server's" not in server.log()
    # The app's log has every line as before: the user's, and the server's notes.
    assert any(line.endswith("] coldsnap: a user's line that looks like the server's")
               for line in app_log), app_log
    assert any(line.startswith("[Broken] coldsnap: boot failed: container cs-")
               for line in app_log), app_log


def test_the_server_log_says_how_much_memory_it_keeps_warm(
        server_factory: type[ServerHandle]) -> None:
    require_criu()
    held = server_factory("criu", {"COLDSNAP_WARM_MEMORY_MB": "12"}).start()
    none = server_factory("criu", {"COLDSNAP_WARM_MEMORY_MB": "0"}).start()
    assert ("keeping 16 MB of memory warm for restores (COLDSNAP_WARM_MEMORY_MB=12; "
            "docs/warm-memory.md)") in held.log()
    assert "keeping no memory warm for restores" in none.log()
    assert "(COLDSNAP_WARM_MEMORY_MB=0; docs/warm-memory.md)" in none.log()
