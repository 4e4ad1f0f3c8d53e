"""The runtime through a real CRIU dump and restore (skips without root and CRIU)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from coldsnap.engine.doctor import criu_usable
from coldsnap.settings import Settings
from tests._runtime.harness import APPS, RuntimeSession, runtime_spec
from tests.end_to_end import criu_missing

pytestmark = pytest.mark.criu


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("runtime-criu")
    settings = Settings(state_dir=base / "state", run_dir=base / "run", prewarm_netns=1)
    if not criu_usable(settings):
        criu_missing(f"needs root and a working CRIU at {settings.criu_path}")
    from coldsnap.engine.criu_engine import CriuEngine

    eng = CriuEngine(settings)
    yield eng
    eng.close()


def test_each_restored_copy_gets_its_own_id_env_and_seed(engine: Any) -> None:
    source = (APPS / "embedder_like.py").read_text()
    phase = RuntimeSession.start(
        source, "Embedder", snapshot=True, env={"EMBEDDER_STAGE": "snapshot-phase"},
        engine=engine,
    )
    phase.expect("ready_to_snapshot")
    phase.wait_for_log("load: model ready on cpu")
    engine.checkpoint(phase.container, "runtime-embedder")

    for n in range(2):
        copy = RuntimeSession(engine.restore("runtime-embedder", runtime_spec(source, "Embedder")))
        try:
            copy.send(
                "resume", container_id=f"cs-copy-{n}",
                env={"EMBEDDER_STAGE": None, "EMBEDDER_DEVICE": f"dev{n}"},
                seed=1000 + n, restored=True,
            )
            copy.expect("ready")
            state = copy.call_value("state")
            assert state["events"] == ["base_load", "load", "setup"]  # load ran once, before
            assert state["snapshot_phase_env"] == "snapshot-phase"
            assert state["stage_env"] is None
            assert (state["device"], state["container_id"]) == (f"dev{n}", f"cs-copy-{n}")
            assert state["random_after_restore"] == random.Random(1000 + n).random()
            assert len(copy.call_value("run", ["hi"])[0]) == 8
            copy.wait_for_log("setup: model on dev")
            assert "load: model ready" not in copy.logs()  # not re-run after restore
            copy.send("shutdown")
            assert copy.wait_exit() == 0
        finally:
            copy.close()
