"""Snapshot diagnostics with a real server and CRIU: the warnings a snapshot is made
with (`snapshots inspect`, the logs), and `coldsnap snapshots why APP [FUNCTION]`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, stats, write_app

WARNED = """
import random
import socket
import subprocess

import coldsnap

app = coldsnap.App("test-snapshot-warned")


@app.cls(enable_memory_snapshot=True, env={"MY_API_TOKEN": "not-a-real-one"})
class Warned:
    @coldsnap.enter(snap=True)
    def load(self):
        self.log = open("/tmp/warned.log", "w")
        self.draw = random.random()
        self.child = subprocess.Popen(["sleep", "1000"])
        self.server = socket.create_server(("127.0.0.1", 0))
        self.conn = socket.create_connection(self.server.getsockname())
        self.peer, _ = self.server.accept()

    @coldsnap.method()
    def ping(self) -> str:
        return "pong"
"""

CLEAN = """
import coldsnap

app = coldsnap.App("test-snapshot-clean")


@app.cls(enable_memory_snapshot=True)
class Clean:
    @coldsnap.enter(snap=True)
    def load(self):
        self.table = {{n: n * n for n in range(1000)}}

    @coldsnap.method()
    def ping(self) -> str:
        return {answer!r}
"""


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def _call(srv: ServerHandle, app: str, cls: str) -> str:
    return srv.python("import coldsnap\n"
                      f"print(coldsnap.Cls.from_name({app!r}, {cls!r})().ping.remote())\n"
                      ).stdout.strip()


def _ready_key(srv: ServerHandle, app: str) -> str:
    snapshots = json.loads(srv.cli("snapshots", "ls", "--json").stdout)
    [key] = [s["key"] for s in snapshots if s.get("app") == app and s["status"] == "ready"]
    return str(key)


def _why(srv: ServerHandle, *args: str) -> tuple[dict[str, Any], str]:
    data = json.loads(srv.cli("snapshots", "why", *args, "--json").stdout)
    return data[0], srv.cli("snapshots", "why", *args).stdout


def test_each_warning_appears_in_inspect_and_the_logs(srv: ServerHandle, tmp_path: Path
                                                      ) -> None:
    srv.cli("deploy", str(write_app(tmp_path, "warned", WARNED)))
    assert _call(srv, "test-snapshot-warned", "Warned") == "pong"
    assert stats(srv, "test-snapshot-warned")["boots"][0]["kind"] == "snapshot-created"
    key = _ready_key(srv, "test-snapshot-warned")
    detail = json.loads(srv.cli("snapshots", "inspect", key, "--json").stdout)
    messages = {w["kind"]: [] for w in detail["warnings"]}
    for warning in detail["warnings"]:
        messages[warning["kind"]].append(warning["message"])
    assert set(messages) == {"tcp_connection", "file_open_for_writing", "rng_drawn",
                             "secret_in_env", "child_process"}, detail["warnings"]
    assert any("to 127.0.0.1:" in m and "closed at restore" in m
               for m in messages["tcp_connection"])
    # The runtime (the python under the container's init) holds both ends.
    assert all(re.search(r"\(held by process \d+ \(python[0-9.]*\)\)", m)
               for m in messages["tcp_connection"]), messages
    assert any(m.startswith("/tmp/warned.log is open for writing")
               for m in messages["file_open_for_writing"])
    assert any(m.startswith("random:") and "coldsnap reseeds" in m
               for m in messages["rng_drawn"])
    assert any("MY_API_TOKEN" in m for m in messages["secret_in_env"])
    assert any("(sleep 1000)" in m for m in messages["child_process"])
    assert "not-a-real-one" not in json.dumps(detail)  # a name, never a value
    text = srv.cli("snapshots", "inspect", key).stdout
    assert f"warnings ({len(detail['warnings'])}):" in text
    assert "[file_open_for_writing] /tmp/warned.log is open for writing" in text
    logs = srv.cli("logs", "test-snapshot-warned").stdout
    assert "snapshot warning: environment variable MY_API_TOKEN looks like a secret" in logs
    assert "snapshot warning: child process" in srv.log()


def test_a_clean_snapshot_has_no_warnings(srv: ServerHandle, tmp_path: Path) -> None:
    srv.cli("deploy", str(write_app(tmp_path, "clean", CLEAN.format(answer="one"))))
    assert _call(srv, "test-snapshot-clean", "Clean") == "one"
    key = _ready_key(srv, "test-snapshot-clean")
    assert json.loads(srv.cli("snapshots", "inspect", key, "--json").stdout)["warnings"] == []
    assert "warnings: none" in srv.cli("snapshots", "inspect", key).stdout


def test_why_names_the_changed_line_then_the_option_then_a_quarantine(
    srv: ServerHandle, tmp_path: Path
) -> None:
    app, app_file = "test-snapshot-why", tmp_path / "why.py"
    source = CLEAN.replace("test-snapshot-clean", app).replace("class Clean", "class Why")
    write_app(tmp_path, "why", source.format(answer="first"))
    srv.cli("deploy", str(app_file))
    assert _call(srv, app, "Why") == "first"
    first, text = _why(srv, app, "Why")
    assert first["previous"] is None and "the first snapshot of this function" in text

    write_app(tmp_path, "why", source.format(answer="second"))  # one line changed
    srv.cli("deploy", str(app_file))
    assert _call(srv, app, "Why") == "second"
    why, text = _why(srv, app, "Why")
    assert [c["input"] for c in why["changes"]] == ["source"], why["changes"]
    assert "-        return 'first'" in why["changes"][0]["diff"]
    assert "+        return 'second'" in why["changes"][0]["diff"]
    assert "why.py: 1 line changed" in text and "+        return 'second'" in text

    option = source.replace("enable_memory_snapshot=True", "enable_memory_snapshot=True, "
                            "timeout=77")
    write_app(tmp_path, "why", option.format(answer="second"))
    srv.cli("deploy", str(app_file))
    assert _call(srv, app, "Why") == "second"
    why, text = _why(srv, app)  # FUNCTION left out: each function with snapshots
    summaries = [c["summary"] for c in why["changes"]]
    assert "option timeout: null -> 77" in summaries, summaries
    assert why["changes"][0]["input"] == "source"  # the decorator's line changed too
    assert "option timeout: null -> 77" in text

    key = why["current"]["key"]
    images = Path(json.loads(srv.cli("snapshots", "inspect", key, "--json").stdout)["path"])
    with open(max((images / "images").iterdir(), key=lambda p: p.stat().st_size), "ab") as f:
        f.write(b"x")  # its size no longer matches: verify quarantines it
    assert srv.cli("snapshots", "verify", key, check=False).returncode == 1
    srv.cli("apps", "stop", app)
    srv.cli("deploy", str(app_file))  # the same inputs: the next cold boot makes it anew
    assert _call(srv, app, "Why") == "second"
    why, text = _why(srv, app, "Why")
    assert why["same_inputs"] and why["current"]["key"] == why["previous"]["key"] == key
    assert [e["event"] for e in why["previous_ended"]] == ["quarantined"]
    assert "same inputs, re-created because: the previous one was quarantined (by " \
           "`coldsnap snapshots verify`" in text

    srv.cli("snapshots", "rm", key)
    srv.cli("apps", "stop", app)
    srv.cli("deploy", str(app_file))
    assert _call(srv, app, "Why") == "second"
    assert "re-created because: the previous one was removed (by `coldsnap snapshots rm`)" \
        in _why(srv, app, "Why")[1]


def test_why_of_an_unknown_app_or_function_says_what_exists(srv: ServerHandle) -> None:
    unknown = srv.cli("snapshots", "why", "no-such-app", check=False)
    assert unknown.returncode == 1
    assert "no app named 'no-such-app'" in unknown.stderr
    assert "`coldsnap apps ls` lists them" in unknown.stderr
    srv.cli("deploy", str(Path(__file__).parents[1] / "apps" / "square.py"))
    missing = srv.cli("snapshots", "why", "test-square", "nope", check=False)
    assert missing.returncode == 1
    assert "app 'test-square' has no function or class 'nope'; it has: big, fail, fail_builtin, " \
        "square" in missing.stderr
    none_yet = srv.cli("snapshots", "why", "test-square", "square", check=False)
    assert none_yet.returncode == 1
    assert "no memory snapshot of test-square/square has been made yet" in none_yet.stderr
    never = srv.cli("snapshots", "why", "test-square", "fail", check=False)
    assert never.returncode == 1  # fail does not set enable_memory_snapshot=True
    assert "test-square/fail takes no memory snapshots (it does not set " \
        "enable_memory_snapshot=True)" in never.stderr, never.stderr
