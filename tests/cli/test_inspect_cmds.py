"""`coldsnap apps`, `logs` and `snapshots` at their edges: a closed stdout
(`coldsnap ... | head -1`), snapshot keys that have no snapshot, and an app without
containers."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.cli import inspect_cmds
from coldsnap.wire.timings import STEP_NAMES
from tests.cli.test_run import ENTRY_APP
from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, write_app
from tests.server.test_snapshot_fallback import CALL as REFUSED_CALL
from tests.server.test_snapshot_fallback import REFUSED

SNAPSHOT_APP = """
import coldsnap

app = coldsnap.App("test-polish-snapshot")


@app.function(enable_memory_snapshot=True)
def hello() -> str:
    return "hi"
"""


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    yield from module_server("none")


def _cli_into_closed_pipe(
    server: ServerHandle, *args: str, buffered: bool
) -> subprocess.CompletedProcess[str]:
    """``coldsnap ARGS | head -1`` where head has already left: every write fails."""
    env = dict(server.env)
    if buffered:
        env.pop("PYTHONUNBUFFERED", None)  # the write fails at the last flush, not in print
    else:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "coldsnap.cli.main", *args],
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=str(server.root),
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_a_closed_stdout_ends_quietly(srv: ServerHandle, tmp_path: Path, buffered: bool) -> None:
    app = str(write_app(tmp_path, "entry", ENTRY_APP))
    srv.cli("deploy", app)
    for args in (
        ["deploy", app],
        ["apps", "ls"],
        ["apps", "stats", "test-entry-args"],
        ["apps", "stats", "test-entry-args", "--json"],
    ):
        result = _cli_into_closed_pipe(srv, *args, buffered=buffered)
        assert (result.returncode, result.stderr) == (141, ""), args


def test_gc_refuses_a_negative_keep(srv: ServerHandle) -> None:
    result = srv.cli("snapshots", "gc", "--keep", "-1", check=False)
    assert result.returncode == 2
    assert "argument --keep: -1 is negative" in result.stderr
    assert "0 or more" in result.stderr


# -- with real snapshots ------------------------------------------------------------------


@pytest.fixture(scope="module")
def criu_srv() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


@pytest.fixture(scope="module")
def keys(criu_srv: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One ready snapshot and one key whose snapshot was refused: status -> key."""
    apps = tmp_path_factory.mktemp("apps")
    criu_srv.cli("deploy", str(write_app(apps, "hello", SNAPSHOT_APP)))
    criu_srv.cli("deploy", str(write_app(apps, "refused", REFUSED)))
    criu_srv.python(
        "import coldsnap\n"
        "print(coldsnap.Function.from_name('test-polish-snapshot', 'hello').remote())"
    )
    criu_srv.python(REFUSED_CALL)
    rows = json.loads(criu_srv.cli("snapshots", "ls", "--json").stdout)
    found = {row["status"]: row["key"] for row in rows}
    assert set(found) == {"ready", "failed"}, rows
    return found


def test_ls_footer_counts_ready_snapshots_and_failed_keys(
    criu_srv: ServerHandle, keys: dict[str, str]
) -> None:
    listing = criu_srv.cli("snapshots", "ls").stdout
    assert "\n1 snapshot(s), 1 failed key(s); the store uses " in listing


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_ls_into_a_closed_stdout_ends_quietly(
    criu_srv: ServerHandle, keys: dict[str, str], buffered: bool
) -> None:
    result = _cli_into_closed_pipe(criu_srv, "snapshots", "ls", buffered=buffered)
    assert (result.returncode, result.stderr) == (141, "")


def test_inspect_of_a_key_without_a_snapshot_fails(
    criu_srv: ServerHandle, keys: dict[str, str]
) -> None:
    unknown = criu_srv.cli("snapshots", "inspect", "no-such-key", check=False)
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr.strip() == (
        "error: no snapshot no-such-key on this host; `coldsnap snapshots ls` lists them"
    )
    failed = criu_srv.cli("snapshots", "inspect", keys["failed"], check=False)
    assert (failed.returncode, failed.stdout) == (1, "")
    assert (
        f"error: no snapshot {keys['failed']} on this host: making one failed "
        "(refused: memory snapshot refused" in failed.stderr
    )
    assert f"`coldsnap snapshots rm {keys['failed']}` clears the failure" in failed.stderr
    ready = json.loads(criu_srv.cli("snapshots", "inspect", keys["ready"], "--json").stdout)
    assert ready["key"] == keys["ready"]


def test_rm_says_only_what_it_removed(criu_srv: ServerHandle, keys: dict[str, str]) -> None:
    """Last in this file: it deletes the keys the tests above read."""
    cleared = criu_srv.cli("snapshots", "rm", keys["failed"]).stdout
    assert cleared.startswith(f"cleared the failure of {keys['failed']}: "), cleared
    assert "removed snapshot" not in cleared
    removed = criu_srv.cli("snapshots", "rm", keys["ready"]).stdout
    assert removed.strip() == f"removed snapshot {keys['ready']}"


def test_stats_of_an_app_without_containers_says_so(srv: ServerHandle) -> None:
    from tests.conftest import APPS

    srv.cli("deploy", str(APPS / "square.py"))
    srv.cli("apps", "drain", "test-square")
    out = srv.cli("apps", "stats", "test-square").stdout
    assert "no containers and no calls since the last deploy or drain" in out


def test_a_malformed_tcp_setting_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "COLDSNAP_STATE_DIR": str(tmp_path / "state"),
           "COLDSNAP_TCP": "127.0.0.1:99999"}
    result = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "apps", "ls"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: COLDSNAP_TCP='127.0.0.1:99999' is not HOST:PORT (e.g. 127.0.0.1:7070). "
        "Fix COLDSNAP_TCP, or unset it"), result.stderr
    assert "Traceback" not in result.stderr


def test_the_boot_table_has_a_column_per_timing_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    timings = {"boot_s": 0.5, **{step: 0.001 * (i + 1) for i, step in enumerate(STEP_NAMES)}}
    stats = {"app": "a", "state": "deployed", "version": "v" * 40, "functions": [],
             "boots": [{"ok": True, "tag": "f", "kind": "restored", "timings": timings,
                        "created_at": 0, "container_id": "cs-1", "error": None}]}
    monkeypatch.setattr(inspect_cmds, "_request", lambda op, **fields: dict(stats))
    inspect_cmds.cmd_apps_stats(argparse.Namespace(app="a", json=False))
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("boot times, median by kind (ms):")
    header, row = (re.split(r"\s{2,}", line.strip()) for line in lines[at + 1:at + 3])
    assert header == ["FUNCTION KIND", "N", "TOTAL",
                      *(label.upper() for label in STEP_NAMES.values())]
    assert row == ["f restored", "1", "500 ms", *(f"{i + 1} ms" for i in range(len(STEP_NAMES)))]
