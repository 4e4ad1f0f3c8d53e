import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.engine.base import Container, ContainerSpec
from coldsnap.engine.doctor import criu_usable
from coldsnap.settings import Settings
from tests.end_to_end import criu_missing

WORKER = Path(__file__).with_name("worker.py")


@pytest.fixture(scope="module")
def criu_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = tmp_path_factory.mktemp("engine")
    settings = Settings(state_dir=base / "state", run_dir=base / "run", prewarm_netns=1)
    if not criu_usable(settings):
        criu_missing(f"needs root and a working CRIU at {settings.criu_path}: run scripts/test.sh")
    return settings


@pytest.fixture(scope="module")
def engine(criu_settings: Settings) -> Iterator[object]:
    from coldsnap.engine.criu_engine import CriuEngine

    eng = CriuEngine(criu_settings)
    yield eng
    eng.close()


def worker_spec(snapshot_phase: bool = True, **env: str) -> ContainerSpec:
    return ContainerSpec(
        argv=[sys.executable, str(WORKER)],
        env={"PATH": "/usr/bin:/bin", **env},
        snapshot_phase=snapshot_phase,
    )


def ask(container: Container, op: str, **fields: str) -> dict:
    container.ctrl_in.write((json.dumps({"op": op, **fields}) + "\n").encode())
    container.ctrl_in.flush()
    return read_line(container)


def read_line(container: Container) -> dict:
    line = container.ctrl_out.readline()
    if not line:
        logs = container.logs.read1(65536) if hasattr(container.logs, "read1") else b""
        raise AssertionError(f"container {container.id} closed its channel; logs: {logs!r}")
    return json.loads(line)


def kill_quietly(*containers: Container) -> None:
    for c in containers:
        c.kill()


def run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
