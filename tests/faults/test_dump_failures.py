"""Dumps that fail for a passing cause, against a real server and real CRIU: the call
still gets its result, `snapshots ls` shows a transient error, nothing is marked
failed for good, and a cold boot after the backoff makes the snapshot."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, wait_for, write_app

# A snapshot phase that holds {mb} MB of touched memory: a dump of it takes a while
# and needs that much room in the store.
BIG_SNAPSHOT = """
import coldsnap

app = coldsnap.App("test-big-snapshot")


@app.cls(enable_memory_snapshot=True)
class Big:
    @coldsnap.enter(snap=True)
    def load(self):
        self.ballast = bytes(range(256)) * ({mb} * 4096)

    @coldsnap.method()
    def size(self) -> int:
        return len(self.ballast)
"""
CALL = ("import coldsnap\n"
        "print(coldsnap.Cls.from_name('test-big-snapshot', 'Big')().size.remote())\n")
RETRY_ENV = {"COLDSNAP_DUMP_RETRY_S": "2", "COLDSNAP_DUMP_RETRY_MAX_S": "4"}


@pytest.fixture(autouse=True)
def _criu() -> None:
    require_criu()


def _snapshots(server: ServerHandle) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(server.cli("snapshots", "ls", "--json").stdout)
    return [row for row in rows if row["app"] == "test-big-snapshot"]


def _cold_boot_again(server: ServerHandle, app_file: Path) -> None:
    """Stop the app (its containers leave) and deploy it again: the next call cold-boots."""
    server.cli("apps", "stop", "test-big-snapshot")
    server.cli("deploy", str(app_file))


def _snapshots_after_backoff(server: ServerHandle, app_file: Path, mb: int) -> None:
    """After the backoff, a cold boot makes the snapshot and continues from it."""
    time.sleep(float(RETRY_ENV["COLDSNAP_DUMP_RETRY_S"]) + 0.5)
    _cold_boot_again(server, app_file)
    again = server.python(CALL)
    assert again.stdout.strip() == str(mb * 2**20)
    assert "memory snapshot created in" in again.stderr, again.stderr + server.log()
    assert "restored from memory snapshot in" in again.stderr
    [row] = _snapshots(server)
    assert (row["status"], row["last_error"], row["restores"]) == ("ready", None, 1)


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def criu_of(server: ServerHandle, verb: bytes, under: Path) -> int | None:
    """The pid of the `criu VERB` this server runs with a path under ``under``, or None."""
    assert server.proc is not None
    prefix = str(under).encode()
    for pid in _children(server.proc.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # /opt/coldsnap/criu/bin/criu runs CRIU through its own loader: the verb comes later.
        if verb in argv and any(arg.startswith(prefix) for arg in argv):
            return pid
    return None


def _criu_dump_of(server: ServerHandle) -> int | None:
    """The pid of the `criu dump` this server runs into its store, or None."""
    return criu_of(server, b"dump", server.settings.snapshots)


def kill_criu_mid(server: ServerHandle, verb: bytes, under: Path,
                  timeout: float = 120) -> None:
    """SIGKILL the server's `criu VERB` while it runs (a dump or restore of the big app
    takes a few hundred ms: look often)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = criu_of(server, verb, under)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.002)
    raise AssertionError(f"no criu {verb.decode()} seen in {timeout} s:\n"
                         f"{server.log()[-3000:]}")


def test_a_killed_criu_dump_is_retried_after_the_backoff(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    mb = 512
    server = server_factory(engine="criu", env=RETRY_ENV).start()
    app_file = write_app(tmp_path, "big", BIG_SNAPSHOT.format(mb=mb))
    server.cli("deploy", str(app_file))
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(server.python, CALL)
        kill_criu_mid(server, b"dump", server.settings.snapshots)
        first = call.result(timeout=300)
    assert first.stdout.strip() == str(mb * 2**20)  # the call got its result: a fallback
    assert ("memory snapshot failed (transient: the next try is in 2 s), booting without "
            "one: criu dump was killed by signal 9") in first.stderr, first.stderr
    [row] = _snapshots(server)
    assert row["status"] == "retrying"
    assert re.fullmatch(r"dump: criu dump was killed by signal 9 \(exit -9\).* \(transient: "
                        r"next try (in \d s|at the next cold boot)\)", row["last_error"]), row
    human = server.cli("snapshots", "ls").stdout
    assert "retrying" in human and "(transient: next try" in human
    _snapshots_after_backoff(server, app_file, mb)


def test_a_full_store_is_named_and_retried_once_space_is_freed(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    mb = 64
    store = tmp_path / "store"
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "cs-full-store", str(store)],
                   check=True)
    try:
        ballast = store / "ballast"  # the rest of the disk, filled by someone else
        subprocess.run(["fallocate", "-l", "140M", str(ballast)], check=True)
        server = server_factory(engine="criu",
                                env={**RETRY_ENV, "COLDSNAP_SNAPSHOT_DIR": str(store)}).start()
        app_file = write_app(tmp_path, "big", BIG_SNAPSHOT.format(mb=mb))
        server.cli("deploy", str(app_file))
        first = server.python(CALL)
        assert first.stdout.strip() == str(mb * 2**20)  # a fallback serves the call
        said = re.search(r"no space left on the snapshot store: (\d+) MB free, the dump "
                         r"needed (\d+) MB", first.stderr)
        assert said, first.stderr + server.log()
        free, needed = int(said[1]), int(said[2])
        # 160 MiB less 140 MiB is about 21 MB; the app holds 64 MiB, about 67 MB.
        assert free <= 22 and needed >= mb * 2**20 / 1e6 and free < needed, said[0]
        assert "(transient: the next try is in 2 s)" in first.stderr
        [row] = _snapshots(server)
        assert row["status"] == "retrying", row  # nothing permanent recorded
        assert row["last_error"].startswith("dump: no space left on the snapshot store")
        assert "(transient: next try" in row["last_error"]
        assert not list(store.glob("*/failed/*.json"))
        assert not list((store / ".staging").iterdir())  # the half-written dump is gone

        ballast.unlink()  # space freed
        _snapshots_after_backoff(server, app_file, mb)
        server.stop()  # its layer mounts live on the store
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)


def test_a_boot_waiting_for_an_in_progress_dump_gives_up_and_boots_without_it(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    """The first cold boot's `criu dump` is stopped mid-way; a second cold boot of the
    same key waits COLDSNAP_SNAPSHOT_WAIT_S for it, then boots without a snapshot and
    serves the calls. Once the dump goes on, the snapshot is made all the same."""
    mb = 256
    server = server_factory(engine="criu", env={"COLDSNAP_SNAPSHOT_WAIT_S": "2"}).start()
    app_file = write_app(tmp_path, "big", BIG_SNAPSHOT.format(mb=mb))
    server.cli("deploy", str(app_file))
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(server.python, CALL)
        deadline = time.monotonic() + 120
        while (dump := _criu_dump_of(server)) is None:
            assert time.monotonic() < deadline, "no criu dump seen:\n" + server.log()[-3000:]
            time.sleep(0.002)
        os.kill(dump, signal.SIGSTOP)
        try:
            # The first container is being dumped: the second call makes the pool boot
            # another, which serves the calls in order (the first call first).
            second = server.python(CALL)
            assert first.result(timeout=60).stdout.strip() == str(mb * 2**20)
            assert Path(f"/proc/{dump}/stat").read_text().split()[2] == "T"  # still stopped
        finally:
            os.kill(dump, signal.SIGCONT)
    assert second.stdout.strip() == str(mb * 2**20), second.stderr + server.log()[-3000:]
    seen = first.result().stderr + second.stderr
    assert re.search(r"coldsnap: another boot is still making memory snapshot \S+ after "
                     r"waiting 2 s \(COLDSNAP_SNAPSHOT_WAIT_S\); booting without a snapshot",
                     seen), seen
    assert "coldsnap: fallback boot ready in" in seen
    assert "restored from memory snapshot" not in seen
    wait_for(lambda: [row["status"] for row in _snapshots(server)] == ["ready"], 120,
             "the snapshot, once its dump went on")
    assert "memory snapshot created in" in server.cli("logs", "test-big-snapshot").stdout
    [row] = _snapshots(server)
    assert row["last_error"] is None, row
