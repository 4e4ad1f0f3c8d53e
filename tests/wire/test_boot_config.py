"""BootConfig: what the server tells a container, and what the runtime reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldsnap.wire.container import BLOCK_NETWORK_ENV, CODE_DIR_ENV, GPU_SNAPSHOT_ENV, BootConfig


def test_to_env_and_from_env_round_trip() -> None:
    config = BootConfig(app_file="embedder.py", tag="Embedder", app_name="st", snapshot=True,
                        gpu_snapshot=True, block_network=True, container_id="cs-1",
                        code_dir=Path("/code"))
    env = config.to_env()
    assert env[GPU_SNAPSHOT_ENV] == "1" and env[CODE_DIR_ENV] == "/code"
    assert env[BLOCK_NETWORK_ENV] == "1"
    assert BootConfig.from_env(env) == config


def test_the_server_leaves_the_code_dir_to_the_engine() -> None:
    env = BootConfig(app_file="app.py", tag="f").to_env()
    assert CODE_DIR_ENV not in env and GPU_SNAPSHOT_ENV not in env
    assert BLOCK_NETWORK_ENV not in env
    assert BootConfig.from_env({**env, CODE_DIR_ENV: "/c"}).code_dir == Path("/c")


def test_missing_variables_are_named() -> None:
    with pytest.raises(ValueError, match="COLDSNAP_CODE_DIR, COLDSNAP_TAG not set"):
        BootConfig.from_env({"COLDSNAP_APP_FILE": "app.py"})
