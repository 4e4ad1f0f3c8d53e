"""Fixtures shared by the test suites: a real ``coldsnap serve`` in a temp state dir."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.bench.seaweed import Seaweed, WeedMissing
from coldsnap.client import Client
from coldsnap.settings import Settings
from coldsnap.wire.errors import ServerUnavailable

REPO = Path(__file__).resolve().parent.parent
# Every server a test starts (many at once) gets a free port for its HTTP gateway.
os.environ.setdefault("COLDSNAP_HTTP", "127.0.0.1:0")
# Servers hold no warm memory (auto holds 1 GB each on a VM that hands memory back, and
# tests run many servers at once); tests/engine/test_warm_memory.py tests it.
os.environ.setdefault("COLDSNAP_WARM_MEMORY_MB", "0")
APPS = REPO / "tests" / "apps"


class ServerHandle:
    """A ``coldsnap serve`` subprocess with its own state dir, and ways to talk to it."""

    def __init__(self, engine: str = "none", env: dict[str, str] | None = None) -> None:
        # Short paths: a unix socket path must fit in 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="cs-e2e-", dir="/tmp"))
        self.state_dir = self.root / "state"
        self.run_dir = self.root / "run"
        self.run_dir.mkdir()
        self.log_path = self.root / "server.log"
        self.env = {
            **os.environ,
            "COLDSNAP_STATE_DIR": str(self.state_dir),
            "COLDSNAP_RUN_DIR": str(self.run_dir),
            "COLDSNAP_ENGINE": engine,
            **(env or {}),
        }
        self.engine = engine
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    @property
    def http(self) -> str:
        """The HTTP gateway's ``http://HOST:PORT``."""
        conn = Client(self.settings)
        try:
            return str(conn.ping()["http"])
        finally:
            conn.close()

    def start(self, timeout: float = 30.0) -> ServerHandle:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "coldsnap.cli.main", "serve"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        conn = Client(self.settings)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"coldsnap serve exited {self.proc.returncode}:\n"
                                       + self.log())
                try:
                    conn.ping()
                    return self
                except (ServerUnavailable, PermissionError):
                    time.sleep(0.05)
        finally:
            conn.close()
        raise RuntimeError("coldsnap serve did not answer in time:\n" + self.log())

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def restart(self) -> ServerHandle:
        """Stop and start again on the same state dir."""
        assert self.stop() == 0, self.log()
        return self.start()

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def cli(self, *args: str, check: bool = True, timeout: float = 120.0
            ) -> subprocess.CompletedProcess[str]:
        """Run ``coldsnap ARGS`` against this server."""
        return self._run([sys.executable, "-m", "coldsnap.cli.main", *args], check, timeout)

    def python(self, code: str, check: bool = True, timeout: float = 120.0
               ) -> subprocess.CompletedProcess[str]:
        """Run ``python -c CODE`` in a separate process that talks to this server."""
        return self._run([sys.executable, "-c", code], check, timeout)

    def _run(self, argv: list[str], check: bool, timeout: float
             ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                                timeout=timeout, cwd=str(self.root))
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv[:4])}... exited {result.returncode}\nstdout:\n{result.stdout}"
                f"\nstderr:\n{result.stderr}\nserver log:\n{self.log()[-4000:]}"
            )
        return result


@pytest.fixture
def server_factory() -> Iterator[type[ServerHandle]]:
    """Start servers with ``server_factory(engine=..., env=...).start()``; all stop after."""
    started: list[ServerHandle] = []

    class Tracked(ServerHandle):
        def __init__(self, engine: str = "none", env: dict[str, str] | None = None) -> None:
            super().__init__(engine, env)
            started.append(self)

    yield Tracked
    for handle in started:
        handle.cleanup()


@pytest.fixture
def server(server_factory: type[ServerHandle]) -> ServerHandle:
    """A running server with the ``none`` engine."""
    return server_factory().start()


@functools.cache
def _cuda_usable() -> bool:
    if not Path("/dev/nvidiactl").exists() or importlib.util.find_spec("torch") is None:
        return False
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
        capture_output=True, text=True, timeout=120,
    )
    return probe.stdout.strip() == "True"


@pytest.fixture
def cuda() -> None:
    """Skip without an NVIDIA GPU and a CUDA build of torch (fail with COLDSNAP_REQUIRE_GPU=1)."""
    if not _cuda_usable():
        reason = "needs an NVIDIA GPU and a CUDA build of torch"
        if os.environ.get("COLDSNAP_REQUIRE_GPU") == "1":
            pytest.fail(reason + " (COLDSNAP_REQUIRE_GPU=1)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def seaweed() -> Iterator[Seaweed]:
    """One real S3 store (SeaweedFS, ``weed mini``) for the session: the shared-store and
    fleet tests each use a prefix of their own (``coldsnap.bench.seaweed.new_prefix``)."""
    store = Seaweed()
    try:
        try:
            store.start()
        except WeedMissing as exc:
            pytest.skip(str(exc))
        yield store
    finally:
        store.cleanup()
