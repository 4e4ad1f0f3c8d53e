"""Restores that go wrong, with a real server and real CRIU: the caller still gets its
result from a plain boot, and `snapshots ls` says why the key is not restored."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, stats, write_app

DIES_WHEN_RESTORED = """
import os

import coldsnap

app = coldsnap.App("test-dies-restored")


@app.cls(enable_memory_snapshot=True)
class Fragile:
    @coldsnap.enter(snap=True)
    def load(self):
        self.made_in = os.environ["COLDSNAP_CONTAINER_ID"]

    @coldsnap.enter(snap=False)
    def start(self):
        if os.environ["COLDSNAP_CONTAINER_ID"] != self.made_in:  # a restored copy
            os._exit(9)

    @coldsnap.method()
    def hello(self) -> str:
        return "hello"
"""
CALL = ("import coldsnap\n"
        "print(coldsnap.Cls.from_name('test-dies-restored', 'Fragile')().hello.remote())\n")


def test_a_restored_container_that_dies_before_ready_falls_back_for_good(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    require_criu()
    server = server_factory("criu").start()
    server.cli("deploy", str(write_app(tmp_path, "fragile", DIES_WHEN_RESTORED)))
    first = server.python(CALL)
    assert first.stdout.strip() == "hello"
    assert "the restored container died" in first.stderr, first.stderr
    rows = [r for r in json.loads(server.cli("snapshots", "ls", "--json").stdout)
            if r["app"] == "test-dies-restored"]
    assert [r["status"] for r in rows] == ["failed"], rows
    assert "restored container died" in rows[0]["last_error"]
    server.cli("apps", "drain", "test-dies-restored")
    assert server.python(CALL).stdout.strip() == "hello"  # a plain boot, no restore tried
    kinds = [b["kind"] for b in reversed(stats(server, "test-dies-restored")["boots"])]
    assert kinds == ["fallback", "fallback"], kinds
