"""A snapshot damaged on disk after it was made: one 4 KiB heap page flipped in its
pages image, the file's size unchanged. A real server and the criu engine: the call
still gets the right answer, the logs name the file, the snapshot is quarantined,
a later boot makes a new one, and `coldsnap snapshots verify` finds the damage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, stats, write_app

PAGE = 4096
MARK = b"coldsnap-heap-page-"  # fills the heap block, so the test can find its pages
HEAP_APP = """
import hashlib

import coldsnap

app = coldsnap.App("{name}")
MARK = {mark!r}


@app.cls(enable_memory_snapshot=True)
class Heap:
    @coldsnap.enter(snap=True)
    def fill(self):
        self.block = bytearray(MARK * (4 * 1024 * 1024 // len(MARK)))

    @coldsnap.method()
    def digest(self) -> str:
        return hashlib.sha256(self.block).hexdigest()
"""


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def _deploy(server: ServerHandle, directory: Path, name: str) -> None:
    server.cli("deploy", str(write_app(directory, name, HEAP_APP.format(name=name,
                                                                         mark=MARK))))


def _cold_call(server: ServerHandle, app: str) -> tuple[str, str]:
    """Call after stopping the app's containers: (the result, how its container booted)."""
    server.cli("apps", "drain", app)
    out = server.python(f"import coldsnap\n"
                        f"print(coldsnap.Cls.from_name({app!r}, 'Heap')().digest.remote())\n")
    return out.stdout.strip(), stats(server, app)["boots"][0]["kind"]


def _snapshot(server: ServerHandle, app: str) -> dict[str, Any] | None:
    rows = json.loads(server.cli("snapshots", "ls", "--json").stdout)
    mine = [r for r in rows if r.get("app") == app]
    return mine[-1] if mine else None


def _flip_heap_page(snapshot_path: Path) -> str:
    """Invert one page of the heap block in the pages image; its name."""
    images = snapshot_path / "images"
    pages = max(images.glob("pages-*.img"), key=lambda p: p.stat().st_size)
    data = pages.read_bytes()
    found = data.find(MARK * (2 * PAGE // len(MARK)))
    assert found >= 0, f"the heap block is not in {pages}"
    offset = (found // PAGE + 1) * PAGE  # a whole page inside the block
    with pages.open("r+b") as f:
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data[offset:offset + PAGE]))
    assert pages.stat().st_size == len(data)
    return pages.name


def test_a_flipped_heap_page_falls_back_and_a_new_snapshot_is_made(
    srv: ServerHandle, tmp_path: Path
) -> None:
    app = "test-damaged-heap"
    _deploy(srv, tmp_path, app)
    right, kind = _cold_call(srv, app)
    assert kind == "snapshot-created"
    snap = _snapshot(srv, app)
    assert snap is not None and snap["status"] == "ready"
    damaged = _flip_heap_page(Path(json.loads(
        srv.cli("snapshots", "inspect", snap["key"], "--json").stdout)["path"]))

    assert _cold_call(srv, app) == (right, "fallback")  # never the flipped memory
    logs = srv.cli("logs", app).stdout
    assert f"snapshot {snap['key']} is damaged: image file {damaged} does not match its " \
           "sha256 digest" in logs
    assert "the next cold boot makes a new snapshot" in logs
    assert f"image file {damaged}" in srv.log()
    assert _snapshot(srv, app) is None  # not listed as ready (nor as failed)
    quarantine = srv.settings.snapshots / "quarantine"
    assert any(p.name.startswith(snap["key"]) for p in quarantine.iterdir())

    assert _cold_call(srv, app) == (right, "snapshot-created")
    assert _cold_call(srv, app) == (right, "restored")
    remade = _snapshot(srv, app)
    assert remade is not None and remade["status"] == "ready"
    # gc deletes the quarantined snapshot too, and says so.
    gc = srv.cli("snapshots", "gc").stdout
    assert "quarantined one(s) (" in gc, gc
    assert not any(quarantine.iterdir())


def test_snapshots_verify_names_a_damaged_key_and_passes_a_good_one(
    srv: ServerHandle, tmp_path: Path
) -> None:
    good, bad = "test-verify-good", "test-verify-bad"
    keys = {}
    for app in (good, bad):
        _deploy(srv, tmp_path, app)
        _cold_call(srv, app)
        snap = _snapshot(srv, app)
        assert snap is not None
        keys[app] = snap["key"]
    assert srv.cli("snapshots", "verify", keys[bad]).stdout.startswith(f"ok       {keys[bad]}")
    damaged = _flip_heap_page(Path(json.loads(
        srv.cli("snapshots", "inspect", keys[bad], "--json").stdout)["path"]))

    result = srv.cli("snapshots", "verify", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"ok       {keys[good]}" in result.stdout
    assert f"damaged  {keys[bad]}: image file {damaged} does not match its sha256 " \
           "digest" in result.stdout
    assert "the next cold boot of its function makes a new snapshot" in result.stdout
    assert _snapshot(srv, bad) is None  # quarantined
    assert srv.cli("snapshots", "verify", keys[good]).returncode == 0
    missing = srv.cli("snapshots", "verify", keys[bad], check=False)
    assert missing.returncode == 1 and f"no snapshot {keys[bad]}" in missing.stderr
