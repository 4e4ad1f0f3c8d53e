"""A criu server killed with SIGKILL, then started again on the same state and run dir:
`coldsnap doctor` lists what the dead one left, and the new one removes exactly that
(its orphaned containers, mounts, container dirs, network namespaces, half-written
dumps) before it serves a call."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, wait_for, write_app
from tests.faults.test_dump_failures import BIG_SNAPSHOT, CALL, _children, _criu_dump_of

SLOW_APP = """
import time

import coldsnap

app = coldsnap.App("test-crash-slow")


@app.function(enable_memory_snapshot=True, timeout=600)
def slow(seconds: float) -> str:
    print("slow: started", flush=True)
    time.sleep(seconds)
    return "slept"
"""
SLOW = "coldsnap.Function.from_name('test-crash-slow', 'slow')"


@pytest.fixture(autouse=True)
def _criu() -> None:
    require_criu()


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _mounts_under(path: Path) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p.startswith(f"{path}/")]


def _loop_files() -> set[str]:
    """The files behind the host's loop devices (a deleted one's path, without the mark)."""
    files = set()
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            files.add(backing.read_text().strip().removesuffix(" (deleted)"))
        except OSError:
            continue  # detached meanwhile
    return files


def _netns_of(pid: int) -> list[str]:
    owners = Path("/run/coldsnap-netns")
    return [f.name for f in owners.iterdir() if f.read_text().strip() == str(pid)]


def _kill(server: ServerHandle) -> int:
    assert server.proc is not None
    pid = server.proc.pid
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)
    return pid


def _doctor_leftovers(server: ServerHandle) -> str:
    out = server.cli("doctor", check=False).stdout
    [line] = [line for line in out.splitlines() if "leftovers:" in line]
    return line


def test_a_killed_server_s_containers_are_killed_and_removed_at_the_next_start(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    server = server_factory(engine="criu").start()
    server.cli("deploy", str(write_app(tmp_path, "slow", SLOW_APP)))
    server.python(f"import coldsnap\nprint({SLOW}.remote(0))")  # the snapshot is made
    for _ in range(2):  # two restored containers, running a call each
        server.python(f"import coldsnap\nprint({SLOW}.spawn(300).object_id)")
    wait_for(lambda: server.cli("logs", "test-crash-slow").stdout.count("slow: started") >= 3,
             60, "the spawned calls to start")
    assert server.proc is not None
    containers = _descendants(server.proc.pid)
    old_pid = _kill(server)
    time.sleep(0.5)
    orphans = {pid for pid in containers if _alive(pid)}
    assert orphans, "the kill left no orphaned container: nothing to test"
    assert _mounts_under(server.run_dir / "containers")
    assert _netns_of(old_pid)
    disks = {str(p) for p in (server.state_dir / "disks").iterdir()}  # containers' and spares'
    assert disks and disks <= _loop_files(), "each disk image is loop-mounted"

    said = _doctor_leftovers(server)
    assert said.startswith("--   leftovers: a killed server left in ")
    assert "container processes" in said and "container dirs" in said, said
    assert "network namespace" in said and "mount" in said, said

    server.start()
    assert "removed what a killed server left in" in server.log()
    wait_for(lambda: not any(_alive(pid) for pid in orphans), 10, "the orphans to die")
    assert _mounts_under(server.run_dir / "containers") == []
    assert list((server.run_dir / "containers").iterdir()) == []
    assert _netns_of(old_pid) == []
    assert not disks & {str(p) for p in (server.state_dir / "disks").iterdir()}
    wait_for(lambda: not disks & _loop_files(), 10, "the dead server's loop devices to go")
    assert server.proc is not None
    assert _doctor_leftovers(server).startswith(
        f"ok   leftovers: none (a server (pid {server.proc.pid}) is running on {server.run_dir}")
    assert server.python(f"import coldsnap\nprint({SLOW}.remote(0))").stdout.strip() == "slept"


def test_a_server_killed_during_a_dump_leaves_no_half_written_snapshot(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    mb = 512
    server = server_factory(engine="criu").start()
    server.cli("deploy", str(write_app(tmp_path, "big", BIG_SNAPSHOT.format(mb=mb))))
    staging = server.settings.snapshots / ".staging"
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(server.python, CALL, False)
        wait_for(lambda: _criu_dump_of(server), 120, "criu dump to start")
        _kill(server)
        call.result(timeout=120)
    assert list(staging.iterdir()), "no half-written dump: nothing to test"

    said = _doctor_leftovers(server)
    assert "half-written dump in .staging (" in said, said

    server.start()
    assert list(staging.iterdir()) == []
    assert "half-written dump in .staging" in server.log()
    assert server.python(CALL).stdout.strip() == str(mb * 2**20)
