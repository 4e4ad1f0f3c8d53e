"""What an operator reads: server.log's timestamped records, COLDSNAP_LOG_LEVEL checked
at startup."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import APPS, ServerHandle


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
    assert any("coldsnap.server.logs: test-square coldsnap: deployed" in line
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
