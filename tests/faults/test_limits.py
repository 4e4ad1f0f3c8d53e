"""Containers at their limits (memory, processes, disk): the caller and the app's log read
which limit it was, in words; the same code under a bigger limit succeeds; a function's
own memory= and ephemeral_disk= beat the server's defaults; restored containers too."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, write_app

APP = """
import errno
import os
import time

import coldsnap

app = coldsnap.App("test-limits")


def _hog(mb: int) -> int:
    data = bytearray(mb * 2**20)
    for i in range(0, len(data), 4096):  # touch every page: resident, not just reserved
        data[i] = 1
    return len(data)


def _fill(mb: int) -> int:
    chunk = b"x" * 2**20
    with open("/tmp/fill", "wb") as out:
        for _ in range(mb):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return os.path.getsize("/tmp/fill")


@app.function(memory=200)
def hog_small(mb: int) -> int:
    return _hog(mb)


@app.function(memory=(100, 1024))  # Modal's (request, limit)
def hog_big(mb: int) -> int:
    return _hog(mb)


@app.function(memory=200, enable_memory_snapshot=True)
def hog_restored(mb: int) -> int:
    return _hog(mb)


@app.function(ephemeral_disk=64)
def fill_small(mb: int) -> int:
    return _fill(mb)


@app.function(ephemeral_disk=256)
def fill_big(mb: int) -> int:
    return _fill(mb)


@app.function(ephemeral_disk=64, enable_memory_snapshot=True)
def fill_restored(mb: int) -> int:
    return _fill(mb)


@app.function()
def fork(n: int) -> int:
    # Children wait on a pipe and leave when it closes: the test bounds the bomb.
    r, w = os.pipe()
    children = []
    try:
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                os.close(w)
                os.read(r, 1)
                os._exit(0)
            children.append(pid)
    finally:
        os.close(w)
        for pid in children:
            os.waitpid(pid, 0)
    return len(children)
"""
CALLER = """
import coldsnap

name, arg = {name!r}, {arg!r}
f = coldsnap.Function.from_name("test-limits", name)
try:
    print("ok", f.remote(arg))
except Exception as exc:
    notes = getattr(exc, "__notes__", [])
    print(type(exc).__name__, "|", str(exc).splitlines()[0], "|", notes[-1] if notes else "")
"""


def _call(server: ServerHandle, name: str, arg: int) -> tuple[str, str]:
    """(the caller's one line, what it printed on stderr: the container's log lines)."""
    result = server.python(CALLER.format(name=name, arg=arg), timeout=300)
    return result.stdout.strip().splitlines()[-1], result.stderr


def _deployed(server_factory: type[ServerHandle], tmp_path: Path,
              env: dict[str, str]) -> ServerHandle:
    require_criu()  # the limits are the criu engine's (cgroups and a disk per container)
    server = server_factory("criu", env=env).start()
    server.cli("deploy", str(write_app(tmp_path, "limits", APP)))
    return server


def test_memory_past_the_limit_says_so_and_a_function_s_own_limit_beats_the_default(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    server = _deployed(server_factory, tmp_path, {"COLDSNAP_CONTAINER_MEMORY_MB": "150"})
    words = "container ran out of memory (limit 200 MiB): raise memory="
    for name in ("hog_small", "hog_restored"):
        line, stderr = _call(server, name, 400)
        assert line.startswith("ExecutionError | container cs-"), (name, line)
        assert words in line, (name, line)
        assert ("restored from memory snapshot" in stderr) == name.endswith("restored")
        assert _call(server, name, 20)[0] == f"ok {20 * 2**20}", name
    # memory=(100, 1024) beats the server's 150 MiB: 400 MiB fits
    assert _call(server, "hog_big", 400)[0] == f"ok {400 * 2**20}"
    assert words in server.cli("logs", "test-limits").stdout


def test_a_fork_bomb_stops_at_the_pids_limit_and_says_so(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    server = _deployed(server_factory, tmp_path, {"COLDSNAP_CONTAINER_PIDS": "64"})
    line, stderr = _call(server, "fork", 6000)
    assert line.startswith("BlockingIOError | [Errno 11] Resource temporarily unavailable"), line
    assert line.endswith("coldsnap: too many processes (limit 64)"), line
    assert "coldsnap: too many processes (limit 64)" in stderr
    assert "too many processes (limit 64)" in server.cli("logs", "test-limits").stdout
    # the same container serves the next call, and forks below the limit work
    assert _call(server, "fork", 30)[0] == "ok 30"
    assert subprocess.run(["true"]).returncode == 0  # the host still forks


def test_writing_past_ephemeral_disk_fills_the_container_s_disk_not_the_host_s_ram(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    server = _deployed(server_factory, tmp_path, {"COLDSNAP_CONTAINER_DISK_MB": "32"})
    words = "no space left in the container's disk (limit 64 MiB): raise ephemeral_disk="
    for name in ("fill_small", "fill_restored"):
        line, stderr = _call(server, name, 100)
        assert line.startswith("OSError | [Errno 28] No space left on device"), (name, line)
        assert line.endswith(f"coldsnap: {words}"), (name, line)
        assert words in stderr, name
        assert ("restored from memory snapshot" in stderr) == name.endswith("restored")
    # ephemeral_disk=256 beats the server's 32 MiB; the bytes land in the container's
    # disk image under the state dir, not in the run dir's tmpfs (RAM)
    tmpfs_before = _used(server.run_dir)
    assert _call(server, "fill_big", 100)[0] == f"ok {100 * 2**20}"
    assert _used(server.run_dir) - tmpfs_before < 8 << 20
    images = {p.name: p.stat().st_blocks * 512 for p in (server.state_dir / "disks").iterdir()}
    assert max(images.values()) >= 100 << 20, images
    assert words in server.cli("logs", "test-limits").stdout


def _used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize
