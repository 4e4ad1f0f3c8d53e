"""scripts/fleet_demo.py's table and files: a failed boot is a row saying so (the table
is printed whole), nodes come from the boots' hosts, a boot's parts add up to it, a note
says the nodes share this machine, and its files are removed or reported with their
size."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fleet_demo.py"


def _demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fleet_demo", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failed_boot_is_a_row_and_its_error_follows(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    boots = [
        {"container_id": "cs-2", "host": "vm/bbb", "kind": "restored", "ok": True,
         "created_at": 2.0, "timings": {"boot_s": 1.2, "fetch_bytes": 80e6, "fetch_s": 1.1,
                                        "restore_s": 0.4}},
        {"container_id": "cs-3", "host": "", "kind": "failed", "ok": False, "created_at": 3.0,
         "timings": {}, "error": "no host in the fleet has room for a container"},
        {"container_id": "cs-1", "host": "vm/aaa", "kind": "snapshot-created", "ok": True,
         "created_at": 1.0, "timings": {"boot_s": 3.2}},
    ]
    _demo()._print_table(boots)
    rows = capsys.readouterr().out.splitlines()
    assert [row.split()[:3] for row in rows[2:5]] == [
        ["cs-1", "vm/aaa", "snapshot-created"], ["cs-2", "vm/bbb", "restored"],
        ["cs-3", "?", "failed"]]
    assert "80 MB in 1100 ms" in rows[3] and rows[3].endswith("1200 ms")
    failed = rows.index("failed boots:")
    assert rows[failed + 1] == "  cs-3: no host in the fleet has room for a container"


def test_a_boots_parts_add_up_and_a_note_says_the_nodes_share_this_machine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    demo = _demo()
    boots = [
        {"container_id": "cs-1", "host": "vm/aaa", "kind": "snapshot-created", "ok": True,
         "created_at": 1.0, "timings": {"boot_s": 6.2, "sandbox_s": 0.014, "restore_s": 0.5,
                                        "import_s": 3.0, "enter_snap_s": 0.4, "dump_s": 1.0}},
        {"container_id": "cs-2", "host": "vm/bbb", "kind": "restored", "ok": True,
         "created_at": 2.0, "timings": {"boot_s": 4.4, "fetch_bytes": 79e6, "fetch_s": 1.4,
                                        "sandbox_s": 0.6, "restore_s": 2.1}},
    ]
    demo._print_table(boots)
    out = capsys.readouterr().out
    header, first, fetched = out.splitlines()[1:4]
    assert header.split()[-5:] == ["store", "sandbox", "restore", "other", "boot"]
    # fetch 1400 + sandbox 600 + restore 2100 + other 300 = boot 4400
    assert fetched.split()[-10:] == ["1400", "ms", "600", "ms", "2100", "ms", "300", "ms",
                                     "4400", "ms"]
    assert first.split()[-8:] == ["14", "ms", "500", "ms", "5686", "ms", "6200", "ms"]
    text = " ".join(out.split())
    cores = len(os.sched_getaffinity(0))
    assert (f"the {demo.NODES} nodes are processes on this machine, sharing its {cores} "
            f"core") in text, text
    assert f"the last {demo.NODES} boots ran at once" in text
    assert "`coldsnap bench fleet` times such boots one at a time" in text
    assert ("without a snapshot, a boot here imports the app and loads the model (3400 ms: "
            "import 3000 ms, enter(snap=True) 400 ms)") in text, text


def test_its_files_are_removed_or_reported_with_their_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    demo = _demo()
    root = tmp_path / "coldsnap-fleet-demo-x"
    (root / "state").mkdir(parents=True)
    (root / "state" / "snapshot").write_bytes(b"x" * 3_000_000)
    demo._leave_files(root, keep=True)
    assert f"the demo's files are in {root}: 3 MB" in capsys.readouterr().out
    assert root.exists()
    demo._leave_files(root, keep=False)
    assert f"removed the demo's files ({root}, 3 MB)" in capsys.readouterr().out
    assert not root.exists()


def test_only_the_ray_sessions_it_started_are_removed(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    demo = _demo()
    monkeypatch.setattr(demo, "RAY_SESSIONS", tmp_path)
    older = tmp_path / "session_2026-11-30_01-00-00_1"
    older.mkdir()
    before = set(tmp_path.glob("session_*"))
    ours = tmp_path / "session_2026-11-30_02-00-00_2"
    (ours / "logs").mkdir(parents=True)
    (tmp_path / "session_latest").symlink_to(ours)
    demo._remove_ray_sessions(before)
    assert older.is_dir() and not ours.exists()
    assert not (tmp_path / "session_latest").is_symlink()
