"""What a container is told at start: environment names, and ``BootConfig``.

The server decides what a container runs (``BootConfig.to_env``); the engine
adds where the control pipes and the app's code landed; the runtime reads it
all back (``BootConfig.from_env``, ``Channel.from_env``). Example::

    env = BootConfig(app_file="app.py", tag="square", snapshot=True).to_env()
    config = BootConfig.from_env({**env, CODE_DIR_ENV: "/__coldsnap__/code"})
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coldsnap.wire.variant import params_from_env, params_to_env

# Set by the engine: the runtime's control pipes (server -> container, container -> server).
CTRL_IN_ENV = "COLDSNAP_CTRL_IN_FD"
CTRL_OUT_ENV = "COLDSNAP_CTRL_OUT_FD"
# Set by the engine: the directory the app's files were written to. In a criu engine
# container it is always CODE_DIR; the runtime puts it on sys.path.
CODE_DIR_ENV = "COLDSNAP_CODE_DIR"
CODE_DIR = "/__coldsnap__/code"
# Set by the server (BootConfig).
APP_FILE_ENV = "COLDSNAP_APP_FILE"
TAG_ENV = "COLDSNAP_TAG"
APP_NAME_ENV = "COLDSNAP_APP_NAME"
SNAPSHOT_ENV = "COLDSNAP_SNAPSHOT"
GPU_SNAPSHOT_ENV = "COLDSNAP_GPU_SNAPSHOT"
PARAMS_ENV = "COLDSNAP_PARAMS"  # a class instance's parameters (wire/variant.py)
# Set in every container (a restore gets its own through ``resume``); its presence
# means "this process runs in a coldsnap container".
CONTAINER_ID_ENV = "COLDSNAP_CONTAINER_ID"
# Set by an engine whose containers share the host's network: the address web
# endpoints listen on (default: every address of the container's own namespace).
WEB_HOST_ENV = "COLDSNAP_WEB_HOST"
DEFAULT_WEB_HOST = "0.0.0.0"


def in_container() -> bool:
    return bool(os.environ.get(CONTAINER_ID_ENV))


@dataclasses.dataclass(frozen=True)
class BootConfig:
    """What the runtime needs to boot one container (docs/protocol.md).

    app_file: the app's file name in the code dir (``embedder.py``).
    tag: the function or class to serve.
    app_name: the name the app is deployed under (``coldsnap run`` and ``deploy
        --name`` may differ from ``App(name)``); calls to its other functions go there.
    snapshot: True in the snapshot phase: run ``enter(snap=True)``, then hand over.
    gpu_snapshot: GPU memory goes into the snapshot too: an open CUDA context is fine.
    container_id: this container's id (a restored copy learns its own from ``resume``).
    code_dir: where the engine wrote the app's files; set by the engine, not the server.
    params: a class's parameter values (``Cls(x=1)``), set before its enter hooks.
    """

    app_file: str
    tag: str
    app_name: str = ""
    snapshot: bool = False
    gpu_snapshot: bool = False
    container_id: str = ""
    code_dir: Path | None = None
    web_host: str = DEFAULT_WEB_HOST
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_env(self) -> dict[str, str]:
        env = {
            APP_FILE_ENV: self.app_file,
            TAG_ENV: self.tag,
            APP_NAME_ENV: self.app_name,
            SNAPSHOT_ENV: "1" if self.snapshot else "0",
            CONTAINER_ID_ENV: self.container_id,
        }
        if self.gpu_snapshot:
            env[GPU_SNAPSHOT_ENV] = "1"
        if self.code_dir is not None:
            env[CODE_DIR_ENV] = str(self.code_dir)
        if self.params:
            env[PARAMS_ENV] = params_to_env(self.params)
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BootConfig:
        """Raises ValueError naming the variables that are missing."""
        missing = [name for name in (CODE_DIR_ENV, APP_FILE_ENV, TAG_ENV)
                   if not environ.get(name)]
        if missing:
            raise ValueError(
                f"{', '.join(missing)} not set: the coldsnap server sets them when it starts "
                "a container (see docs/protocol.md)"
            )
        return cls(
            app_file=environ[APP_FILE_ENV],
            tag=environ[TAG_ENV],
            app_name=environ.get(APP_NAME_ENV, ""),
            snapshot=environ.get(SNAPSHOT_ENV, "0") == "1",
            gpu_snapshot=environ.get(GPU_SNAPSHOT_ENV, "0") == "1",
            container_id=environ.get(CONTAINER_ID_ENV, ""),
            code_dir=Path(environ[CODE_DIR_ENV]),
            web_host=environ.get(WEB_HOST_ENV) or DEFAULT_WEB_HOST,
            params=params_from_env(environ.get(PARAMS_ENV, "")),
        )
