"""Memory snapshots through the whole platform: created by the first cold boot of a
version, restored by later ones, listed by `coldsnap snapshots ls`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, require_criu, stats, write_app

EMBED = (
    "import coldsnap\n"
    "E = coldsnap.Cls.from_name('test-embedder-like', 'Embedder')\n"
    "print(len(E().run.remote(['a', 'b'])))\n"
)

SLOW_SNAPSHOT = """
import os
import time

import coldsnap

app = coldsnap.App("test-slow-snapshot")


@app.cls(enable_memory_snapshot=True)
class Slow:
    @coldsnap.enter(snap=True)
    def load(self):
        time.sleep(1.5)
        self.loaded_by = os.getpid()
        self.label = "{label}"

    @coldsnap.method()
    def who(self) -> str:
        return self.label

    @coldsnap.method()
    def can_read(self, path: str) -> bool:
        try:
            with open(path, "rb"):
                return True
        except OSError:
            return False
"""


@pytest.fixture(scope="module", params=["none", "criu"])
def srv(request: pytest.FixtureRequest) -> Iterator[ServerHandle]:
    if request.param == "criu":
        require_criu()
    yield from module_server(request.param)


def _snapshots(server: ServerHandle) -> list[dict[str, Any]]:
    result = server.cli("snapshots", "ls", "--json", check=server.engine != "none")
    if server.engine == "none":
        assert result.returncode == 1
        assert "snapshots are not available with engine 'none'" in result.stderr
        return []
    snapshots: list[dict[str, Any]] = json.loads(result.stdout)
    return snapshots


def _cold_boot_again(server: ServerHandle, app_file: Path) -> None:
    """Stop the app (its containers leave) and deploy it again: the next call cold-boots."""
    name = json.loads(server.cli("deploy", str(app_file), "--json").stdout)["app"]
    server.cli("apps", "stop", name)
    server.cli("deploy", str(app_file))


def test_first_boot_creates_and_later_boots_restore(srv: ServerHandle) -> None:
    app_file = APPS / "embedder_like.py"
    if srv.engine == "none":  # its @build needs a sandbox: deploy says so
        refused = srv.cli("deploy", str(app_file), check=False)
        assert refused.returncode == 1
        assert "building the image of embedder_like.py failed" in refused.stderr
        assert "need the criu engine" in refused.stderr
        assert _snapshots(srv) == []
        return
    deployed = srv.cli("deploy", str(app_file))
    assert "Running @build build of Embedder" in deployed.stderr
    first = srv.python(EMBED)
    assert first.stdout.strip() == "2"
    assert "creating memory snapshot" in first.stderr, first.stderr + srv.log()
    # The hooks' own lines come first: the snapshot is taken after them.
    assert first.stderr.index("load: model ready") < first.stderr.index("creating memory snap")
    assert "memory snapshot created in" in first.stderr, first.stderr + srv.log()
    assert "restored from memory snapshot in" in first.stderr  # restore after dump
    [snap] = [s for s in _snapshots(srv) if s["app"] == "test-embedder-like"]
    assert snap["status"] == "ready" and snap["tag"] == "Embedder"
    assert snap["size_bytes"] > 1_000_000 and snap["restores"] == 1
    listing = srv.cli("snapshots", "ls").stdout
    assert snap["key"] in listing and "test-embedder-like/Embedder" in listing
    assert "snapshot(s); the store uses" in listing  # disk usage, reported

    _cold_boot_again(srv, app_file)
    second = srv.python(EMBED)
    assert second.stdout.strip() == "2"
    assert "creating memory snapshot" not in second.stderr
    assert "restored from memory snapshot in" in second.stderr
    [again] = [s for s in _snapshots(srv) if s["app"] == "test-embedder-like"]
    assert again["key"] == snap["key"] and again["restores"] == 2
    kinds = [b["kind"] for b in stats(srv, "test-embedder-like")["boots"]]
    assert kinds == ["restored", "snapshot-created"]  # newest first


def test_concurrent_cold_boots_make_one_snapshot(srv: ServerHandle, tmp_path: Path) -> None:
    app_file = write_app(tmp_path, "slow", SLOW_SNAPSHOT.format(label="one"))
    srv.cli("deploy", str(app_file))
    out = srv.python(
        "from concurrent.futures import ThreadPoolExecutor\n"
        "import coldsnap\n"
        "S = coldsnap.Cls.from_name('test-slow-snapshot', 'Slow')\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    calls = [pool.submit(S().who.remote) for _ in range(4)]\n"
        "    print(' '.join(c.result() for c in calls))\n"
    ).stdout.split()
    assert out == ["one"] * 4
    boots = stats(srv, "test-slow-snapshot")["boots"]
    kinds = sorted(b["kind"] for b in boots)
    if srv.engine == "none":
        assert set(kinds) == {"plain"}
        return
    assert kinds.count("snapshot-created") == 1, kinds
    assert set(kinds) <= {"snapshot-created", "restored"}, kinds
    assert len([s for s in _snapshots(srv) if s["app"] == "test-slow-snapshot"]) == 1


def test_new_version_makes_a_new_snapshot(srv: ServerHandle, tmp_path: Path) -> None:
    app_file = write_app(tmp_path, "slow", SLOW_SNAPSHOT.format(label="v1"))
    srv.cli("deploy", str(app_file))
    call = ("import coldsnap\n"
            "print(coldsnap.Cls.from_name('test-slow-snapshot', 'Slow')().who.remote())\n")
    assert srv.python(call).stdout.strip() == "v1"
    app_file.write_text(SLOW_SNAPSHOT.format(label="v2"))
    srv.cli("deploy", str(app_file))
    assert srv.python(call).stdout.strip() == "v2"
    if srv.engine == "criu":
        keys = {s["key"] for s in _snapshots(srv) if s["app"] == "test-slow-snapshot"}
        assert len(keys) >= 2


def test_containers_cannot_read_the_token(srv: ServerHandle, tmp_path: Path) -> None:
    if srv.engine == "none":
        pytest.skip("the none engine runs containers as plain processes: no isolation")
    srv.cli("deploy", str(write_app(tmp_path, "slow", SLOW_SNAPSHOT.format(label="t"))))
    token = srv.settings.token_path
    out = srv.python(
        "import coldsnap\n"
        "S = coldsnap.Cls.from_name('test-slow-snapshot', 'Slow')\n"
        f"print(S().can_read.remote({str(token)!r}))\n"
    )
    assert out.stdout.strip() == "False"


def test_inspect_rm_and_boot_breakdown(srv: ServerHandle, tmp_path: Path) -> None:
    app_file = write_app(tmp_path, "slow", SLOW_SNAPSHOT.format(label="inspect"))
    srv.cli("deploy", str(app_file))
    srv.python("import coldsnap\n"
               "print(coldsnap.Cls.from_name('test-slow-snapshot', 'Slow')().who.remote())\n")
    human = srv.cli("apps", "stats", "test-slow-snapshot").stdout
    assert "boot times, median by kind (ms):" in human and "FIRST INPUT" in human
    [boot] = stats(srv, "test-slow-snapshot")["boots"][:1]
    assert {"sandbox_s", "import_s", "enter_snap_s", "boot_s", "first_input_s"} <= set(
        boot["timings"])
    assert boot["timings"]["enter_snap_s"] >= 1.4  # the hook sleeps 1.5 s
    if srv.engine == "none":
        assert srv.cli("snapshots", "inspect", "x", check=False).returncode == 1
        return
    assert boot["kind"] == "snapshot-created"
    assert {"dump_s", "restore_s"} <= set(boot["timings"])
    version = stats(srv, "test-slow-snapshot")["version"][:32]
    # version + the interpreter's packages + tag
    [snap] = [s for s in _snapshots(srv)
              if s["key"].startswith(version + "-") and s["key"].endswith("-Slow")]
    assert snap["status"] == "ready" and snap["restores"] == 1
    detail = json.loads(srv.cli("snapshots", "inspect", snap["key"], "--json").stdout)
    assert snap["key"] in json.dumps(detail)
    assert detail["restores"] == snap["restores"] == 1  # one count, the server's
    for bad in ("", ".", "../" + snap["key"]):  # names outside the store are refused
        refused = srv.cli("snapshots", "rm", bad, check=False)
        assert refused.returncode == 1 and "is not a snapshot key" in refused.stderr
    assert snap["key"] in {s["key"] for s in _snapshots(srv) if s["status"] == "ready"}
    removed = srv.cli("snapshots", "rm", snap["key"]).stdout.strip()
    assert removed == f"removed snapshot {snap['key']}"
    assert snap["key"] not in {s["key"] for s in _snapshots(srv) if s["status"] == "ready"}


def test_doctor_reports_checks(srv: ServerHandle) -> None:
    result = srv.cli("doctor", "--json", check=False)
    checks = json.loads(result.stdout)
    assert {"name", "ok", "detail", "fix"} <= set(checks[0])
    names = {c["name"] for c in checks}
    assert "criu" in names or "criu check" in names
    assert result.returncode == (0 if all(c["ok"] or not c.get("needed", True) for c in checks)
                                 else 1)
