"""A server SIGKILLed with a container running leaves nothing that stops the next one
from starting on the same state dir (its lock, socket file, run dir), and a server
that holds the lock while frozen is named with the way to resume or end it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import require_criu

CALL = """
import coldsnap
print(coldsnap.Function.from_name("test-square", "square").remote(5))
"""


@pytest.mark.parametrize("engine", ["none", "criu"])
def test_a_killed_server_leaves_nothing_that_stops_the_next(
    server_factory: type[ServerHandle], engine: str,
) -> None:
    if engine == "criu":
        require_criu()
    server = server_factory(engine).start()
    server.cli("deploy", str(APPS / "square.py"))
    assert server.python(CALL).stdout.strip() == "25"  # a container is running
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    assert server.settings.socket_path.exists()  # left behind, and in nobody's way
    try:
        server.start()
        assert server.python(CALL).stdout.strip() == "25"
        server.stop()
    finally:
        _unmount_under(server.run_dir)  # the killed server's container mounts: not ours


def _unmount_under(root: Path) -> None:
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted(points, key=len, reverse=True):
        if point == str(root) or point.startswith(f"{root}/"):
            subprocess.run(["umount", "-l", point], check=False)


def test_a_frozen_server_holding_the_lock_is_named_with_the_fix(
    server_factory: type[ServerHandle],
) -> None:
    server = server_factory().start()
    assert server.proc is not None
    pid = server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        second = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "serve"],
                                env=server.env, capture_output=True, text=True, timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert second.returncode == 3  # EXIT_ALREADY_RUNNING
    assert second.stderr.strip() == (
        f"error: the coldsnap server (pid {pid}) that holds {server.state_dir}/server.lock "
        f"is stopped (SIGSTOP, or a debugger): resume it with `kill -CONT {pid}`, or end it "
        f"with `kill -KILL {pid}`, then try again.")
