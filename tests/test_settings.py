"""Settings from the environment, and the defaults derived from the state dir."""

from __future__ import annotations

from pathlib import Path

from coldsnap.settings import Settings


def test_each_state_dir_gets_a_run_dir_of_its_own() -> None:
    default = Settings.from_env({})
    assert default.run_path == Path("/run/coldsnap")
    one = Settings.from_env({"COLDSNAP_STATE_DIR": "/tmp/one"})
    two = Settings.from_env({"COLDSNAP_STATE_DIR": "/tmp/two"})
    assert one.run_path != two.run_path and one.run_path.parent == Path("/run")
    assert one.run_path == Settings.from_env({"COLDSNAP_STATE_DIR": "/tmp/one"}).run_path
    chosen = Settings.from_env({"COLDSNAP_STATE_DIR": "/tmp/one", "COLDSNAP_RUN_DIR": "/run/x"})
    assert chosen.run_path == Path("/run/x")
