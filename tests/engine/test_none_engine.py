"""The none engine: what it can't do, it says in the container's log."""

from __future__ import annotations

import sys
from pathlib import Path

from coldsnap.engine.base import ContainerSpec
from coldsnap.engine.none_engine import NoneEngine


def test_block_network_is_said_to_have_no_effect(tmp_path: Path) -> None:
    engine = NoneEngine(tmp_path)
    spec = ContainerSpec(argv=[sys.executable, "-c", "print('ran')"], block_network=True)
    container = engine.start(spec)
    try:
        assert container.wait(30) == 0
        logs = container.logs.read().decode()
    finally:
        container.kill()
    assert "block_network=True has no effect on the none engine" in logs
    assert "COLDSNAP_ENGINE=criu" in logs and "ran" in logs
