"""The start-up sweep where nothing was left, and where another server holds the run dir
and store: it removes nothing and says why."""

from __future__ import annotations

from pathlib import Path

from coldsnap.engine.leftovers import Leftovers, RunDirClaim, find_leftovers

CRIU_DIR = Path("/opt/coldsnap/criu")


def test_a_sweep_with_nothing_left_removes_nothing(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    claim = RunDirClaim(tmp_path / "run", tmp_path / "store")
    try:
        found = claim.sweep(CRIU_DIR)
        assert (bool(found), found.summary(), found.busy) == (False, "nothing", [])
        assert claim.owns_run_dir
    finally:
        claim.release()


def test_a_second_claim_on_a_held_run_dir_and_store_touches_nothing(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    dump = tmp_path / "store" / ".staging" / "key-1234abcd"
    first = RunDirClaim(tmp_path / "run", tmp_path / "store")
    try:
        first.sweep(CRIU_DIR)
        dump.mkdir(parents=True)  # the live server's dump in progress
        (tmp_path / "run" / "containers" / "cs-1").mkdir(parents=True)
        second = RunDirClaim(tmp_path / "run", tmp_path / "store")
        found = second.sweep(CRIU_DIR)
        second.release()
        assert not found and not second.owns_run_dir
        assert found.busy[0].startswith(f"run dir {tmp_path / 'run'} is in use by pid ")
        assert found.busy[1] == f"store {tmp_path / 'store'} is in use by another server"
        assert dump.is_dir() and (tmp_path / "run" / "containers" / "cs-1").is_dir()
        assert not find_leftovers(tmp_path / "run", tmp_path / "store", CRIU_DIR)
    finally:
        first.release()
    # Once the first lets go (as a killed server does), its dump and dirs are leftovers.
    left = find_leftovers(tmp_path / "run", tmp_path / "store", CRIU_DIR)
    assert left.summary() == "1 container dir, 1 half-written dump in .staging (0.0 MB)"


def test_the_summary_names_each_kind_left() -> None:
    found = Leftovers(processes=[1, 2], mounts=[Path("/r/c/x/root")], netns=[3],
                      staging=[Path("/s/.staging/k")], staging_bytes=512_000_000)
    assert found.summary() == ("2 container processes, 1 mount, 1 network namespace, "
                               "1 half-written dump in .staging (512.0 MB)")
