"""Hooks that raise fail the call with the user's exception and a clear note; the server
carries on. And the SDK starts a server on demand when none runs."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import coldsnap
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import app_with_env, stats, wait_for

CALL_BROKEN = """
import coldsnap
B = coldsnap.Cls.from_name("test-failing-hooks", "Broken")
try:
    B().run.remote()
except Exception as exc:
    print(type(exc).__name__, "|", exc, "|", " ".join(getattr(exc, "__notes__", [])))
"""


@pytest.mark.parametrize("stage", ["snap", "enter"])
def test_failing_hook_fails_the_call(server_factory: type[ServerHandle], stage: str,
                                     tmp_path: Path) -> None:
    server = server_factory().start()
    app = app_with_env(tmp_path, APPS / "failing_hooks.py", {"FAILING_HOOKS_STAGE": stage})
    server.cli("deploy", str(app))
    result = server.python(CALL_BROKEN)
    message = "no weights at /model.bin" if stage == "snap" else "setup failed on purpose"
    assert result.stdout.startswith(f"WeightsMissing | {message} |")
    assert "failed to boot in" in result.stdout
    assert "load: starting" in result.stderr  # the hook's own output reached the caller
    fn = stats(server, "test-failing-hooks")["functions"][0]
    assert fn["boots_failed"] >= 1 and fn["calls_failed"] == 1 and fn["queued"] == 0
    # The server carries on: the next call boots again and fails the same way.
    assert server.python(CALL_BROKEN).stdout.startswith("WeightsMissing |")


PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37


@pytest.fixture
def init_reaps_orphans() -> Iterator[None]:
    """Orphans of the test go to init, not to pytest. An in-process CRIU engine (engine and
    runtime tests run one) makes pytest a child subreaper: the background server a CLI run
    leaves behind would become pytest's child and, once stopped, a zombie nobody reaps,
    never gone to the client or to ``_stop_background_server``."""
    libc = ctypes.CDLL(None, use_errno=True)
    was = ctypes.c_int(0)
    libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(was))
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0)
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, was.value)


def _stop_background_server(handle: ServerHandle) -> None:
    """Stop the server a client started for ``handle``'s state dir (by the lock's pid)."""
    lock = handle.state_dir / "server.lock"
    pid_text = lock.read_text().strip() if lock.exists() else ""
    if pid_text:
        os.kill(int(pid_text), signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and Path(f"/proc/{pid_text}").exists():
            time.sleep(0.05)
    handle.cleanup()


@pytest.mark.usefixtures("init_reaps_orphans")
def test_sdk_starts_a_server_when_none_runs(tmp_path: Path) -> None:
    handle = ServerHandle()  # configured, not started
    try:
        handle.cli("deploy", str(APPS / "square.py"))  # starts the embedded server
        lock = handle.state_dir / "server.lock"
        pid = int(wait_for(lambda: lock.read_text().strip(), 10, "the server's pid"))
        assert "listening on" in (handle.state_dir / "server.log").read_text()
        out = handle.python(
            "import coldsnap\n"
            "print(coldsnap.Function.from_name('test-square', 'square').remote(4))\n"
        )
        assert out.stdout.strip() == "16"
    finally:
        _stop_background_server(handle)
    assert pid > 0



def _exited(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.usefixtures("init_reaps_orphans")
def test_a_client_with_other_code_replaces_the_background_server(tmp_path: Path) -> None:
    # Another checkout of coldsnap (here: a copy with one changed line) finds the
    # server an older one started in the background: it replaces it with its own.
    other = tmp_path / "other-checkout"
    shutil.copytree(Path(coldsnap.__file__).parent, other / "coldsnap",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(other / "coldsnap" / "__init__.py", "a") as changed:
        changed.write("# another version\n")
    handle = ServerHandle()  # configured, not started
    try:
        handle.cli("deploy", str(APPS / "square.py"))  # starts the embedded server
        old_pid = int((handle.state_dir / "server.lock").read_text().strip())
        call = ("import coldsnap, os\n"
                "print(coldsnap.__file__.startswith(os.environ['PYTHONPATH']))\n"
                # the deploy outlives the restart: it is in the state dir
                "print(coldsnap.Function.from_name('test-square', 'square').remote(5))\n")
        env = {**handle.env, "PYTHONPATH": str(other)}
        out = subprocess.run([sys.executable, "-c", call], env=env, capture_output=True,
                             text=True, timeout=120, cwd=str(tmp_path))
        assert out.stdout.split() == ["True", "25"], out.stderr
        assert f"restarting the background server (pid {old_pid})" in out.stderr
        new_pid = int((handle.state_dir / "server.lock").read_text().strip())
        assert new_pid != old_pid and _exited(old_pid)  # gone, or a zombie to be reaped
    finally:
        _stop_background_server(handle)


NETWORK_IN_SNAPSHOT = """
import socket

import coldsnap

app = coldsnap.App("test-network-in-snapshot")


@app.cls(enable_memory_snapshot=True, block_network=True)
class Downloader:
    @coldsnap.enter(snap=True)
    def download(self):
        socket.getaddrinfo("pypi.org", 443)  # what any download does first

    @coldsnap.method()
    def run(self):
        return "unreachable"
"""


def test_network_under_block_network_fails_with_a_hint(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    from tests.end_to_end import require_criu, write_app

    require_criu()
    server = server_factory(engine="criu").start()
    server.cli("deploy", str(write_app(tmp_path, "net", NETWORK_IN_SNAPSHOT)))
    result = server.python(
        "import coldsnap\n"
        "try:\n"
        "    coldsnap.Cls.from_name('test-network-in-snapshot', 'Downloader')().run.remote()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, '|', exc, '|', ' '.join(getattr(exc, '__notes__', [])))\n"
    )
    assert result.stdout.startswith("gaierror |"), result.stdout
    assert "has block_network=True" in result.stdout
    assert "no network but loopback" in result.stdout
